/**
 * Connections to Postgres: the replication connection (node-postgres with
 * `replication: 'database'`) with the pinned output settings that make what Postgres prints
 * independent of server defaults, and plain connections for catalog work.
 */
import pg from 'pg';
import { pinnedOptionsString } from '../values/session.ts';

export interface ServerIdentity {
  systemId: string;
  timeline: number;
  xlogpos: string;
  dbname: string;
  serverVersionNum: number;
  walSenderTimeoutMs: number;
}

export async function openReplicationConnection(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    replication: 'database',
    options: pinnedOptionsString(),
    application_name: 'walnats',
  } as pg.ClientConfig);
  // A dropped connection surfaces as an 'error' event; the stream turns it into its end.
  client.on('error', () => {});
  await client.connect();
  return client;
}

export async function openCatalogConnection(url: string, applicationName = 'walnats-catalog'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, options: pinnedOptionsString(), application_name: applicationName.slice(0, 63) });
  client.on('error', () => {});
  await client.connect();
  return client;
}

function parseDurationSetting(text: string): number {
  const m = /^(\d+)\s*(ms|s|min|h)?$/.exec(text.trim());
  if (!m) return 60_000;
  const n = Number(m[1]);
  switch (m[2]) {
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'min':
      return n * 60_000;
    case 'h':
      return n * 3_600_000;
    default:
      return n; // plain numbers are milliseconds for wal_sender_timeout
  }
}

export async function identifySystem(client: pg.Client): Promise<ServerIdentity> {
  const id = (await client.query('IDENTIFY_SYSTEM')).rows[0] as Record<string, string>;
  const version = (await client.query('SHOW server_version_num')).rows[0] as Record<string, string>;
  const timeout = (await client.query('SHOW wal_sender_timeout')).rows[0] as Record<string, string>;
  if (id.dbname == null) throw new Error('IDENTIFY_SYSTEM returned no database: the connection is not a logical replication connection');
  return {
    systemId: String(id.systemid),
    timeline: Number(id.timeline),
    xlogpos: String(id.xlogpos),
    dbname: String(id.dbname),
    serverVersionNum: Number(version.server_version_num),
    walSenderTimeoutMs: parseDurationSetting(String(timeout.wal_sender_timeout)),
  };
}
