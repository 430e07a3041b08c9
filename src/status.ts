/**
 * `walnats status`: where replication stands, from the outside. Reads the slot and the
 * publication from Postgres over a normal connection and the stream from JetStream; it does
 * not need (or disturb) a running daemon, so it works when the daemon is down — which is
 * when one needs it most.
 *
 * A part that cannot be reached is reported with an `error` rather than failing the whole
 * report: the slot's lag is worth seeing while NATS is down, and the stream while Postgres is.
 */
import pg from 'pg';
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connect } from '@nats-io/transport-node';
import type { WalnatsConfig } from './config.ts';
import { redactSecret } from './config.ts';
import { defaultStreamName } from './events/subject.ts';
import { readLastPosition } from './publisher/position.ts';
import { natsConnectionOptions } from './nats-connection.ts';
import { formatLsn } from './lsn.ts';
import { leaderLockHolder } from './leader-lock.ts';

export interface SlotStatus {
  name: string;
  exists: boolean;
  active: boolean;
  activePid: number | null;
  /** Up to where the consumer (walnats) has confirmed; as Postgres prints LSNs. */
  confirmedFlushLsn: string | null;
  /** The oldest WAL the slot keeps. */
  restartLsn: string | null;
  /** pg_current_wal_lsn() − confirmed_flush_lsn, in bytes. */
  lagBytes: number | null;
  /** pg_stat_replication.flush_lag of the slot's walsender in seconds (0 when caught up, null when none runs). */
  lagSeconds: number | null;
  /** reserved | extended | unreserved | lost (pg_replication_slots.wal_status). */
  walStatus: string | null;
  plugin: string | null;
  /** The walnats instance holding the slot's leader lock (the active one; others are standbys). */
  leader: { pid: number; name: string; addr: string | null } | null;
  /** Other walnats instances waiting for that lock. */
  standbys: number;
}

export interface PublicationStatus {
  name: string;
  exists: boolean;
  allTables: boolean;
  /** `schema.table` of every table the publication covers now. */
  tables: string[];
}

export interface StreamStatus {
  name: string;
  exists: boolean;
  messages: number;
  bytes: number;
  firstSeq: number;
  lastSeq: number;
  /** Position of the last published event (its Walnats-Commit-Lsn and Walnats-Seq headers). */
  lastPosition: { commitLsn: string; seq: number } | null;
  consumers: number;
  /** Set when the stream could not be read (NATS unreachable, foreign messages…). */
  error?: string;
}

export interface WalnatsStatus {
  /** Database the slot and publication belong to; null when Postgres could not be reached. */
  database: string | null;
  /** pg_current_wal_lsn() at the time of the report. */
  serverLsn: string | null;
  slot: SlotStatus;
  publication: PublicationStatus;
  stream: StreamStatus;
  /** Set when Postgres could not be queried; slot and publication are then empty. */
  postgresError?: string;
}

export interface CollectStatusOptions {
  /** How long to try reaching NATS; default 5s. Status must answer, not wait out an outage. */
  natsTimeoutMs?: number;
}

type StatusConfig = Pick<WalnatsConfig, 'pgUrl' | 'prefix' | 'publication' | 'slot' | 'streamName' | 'natsUrl'> &
  Partial<Pick<WalnatsConfig, 'natsUser' | 'natsPassword' | 'natsToken' | 'natsCredsFile' | 'natsNkeySeed' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'>>;

export async function collectStatus(config: StatusConfig, opts: CollectStatusOptions = {}): Promise<WalnatsStatus> {
  const status: WalnatsStatus = {
    database: null,
    serverLsn: null,
    slot: emptySlot(config.slot),
    publication: { name: config.publication, exists: false, allTables: false, tables: [] },
    stream: emptyStream(config.streamName ?? ''),
  };
  try {
    Object.assign(status, await queryPostgres(config));
  } catch (err) {
    status.postgresError = errorText(err);
  }
  const streamName = config.streamName ?? (status.database !== null ? defaultStreamName(config.prefix, status.database) : null);
  if (streamName === null) {
    status.stream.error = 'stream name unknown: set stream_name, or make Postgres reachable to derive it from the database name';
    return status;
  }
  status.stream = await queryStream(config, streamName, opts.natsTimeoutMs ?? 5000);
  return status;
}

function emptySlot(name: string): SlotStatus {
  return { name, exists: false, active: false, activePid: null, confirmedFlushLsn: null, restartLsn: null, lagBytes: null, lagSeconds: null, walStatus: null, plugin: null, leader: null, standbys: 0 };
}

function emptyStream(name: string): StreamStatus {
  return { name, exists: false, messages: 0, bytes: 0, firstSeq: 0, lastSeq: 0, lastPosition: null, consumers: 0 };
}

function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e: any = err; e && parts.length < 5; e = e.cause) if (e.message) parts.push(String(e.message));
  return parts.join(': ') || String(err);
}

async function queryPostgres(config: StatusConfig): Promise<Pick<WalnatsStatus, 'database' | 'serverLsn' | 'slot' | 'publication'>> {
  const client = new pg.Client({ connectionString: config.pgUrl, application_name: 'walnats status', connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`cannot connect to Postgres at ${redactSecret(config.pgUrl)}`, { cause: err });
  }
  try {
    // pg_current_wal_lsn() fails on a standby; fall back to the replay position there.
    const head = await client.query<{ db: string; lsn: string }>(
      `SELECT current_database() AS db,
              (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn`,
    );
    const slotRows = await client.query<{
      plugin: string | null; active: boolean; active_pid: number | null; confirmed: string | null; restart: string | null; wal_status: string | null; lag: string | null; lag_seconds: string | null;
    }>(
      `SELECT s.plugin, s.active, s.active_pid, s.confirmed_flush_lsn::text AS confirmed, s.restart_lsn::text AS restart, s.wal_status,
              pg_wal_lsn_diff($2::pg_lsn, s.confirmed_flush_lsn)::text AS lag,
              CASE WHEN r.pid IS NULL THEN NULL ELSE COALESCE(EXTRACT(epoch FROM r.flush_lag), 0) END::text AS lag_seconds
         FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
        WHERE s.slot_name = $1`,
      [config.slot, head.rows[0].lsn],
    );
    const s = slotRows.rows[0];
    const slot: SlotStatus = s
      ? {
          name: config.slot,
          exists: true,
          active: s.active,
          activePid: s.active_pid,
          confirmedFlushLsn: s.confirmed,
          restartLsn: s.restart,
          lagBytes: s.lag === null ? null : Number(s.lag),
          lagSeconds: s.lag_seconds === null ? null : Number(s.lag_seconds),
          walStatus: s.wal_status,
          plugin: s.plugin,
          leader: null,
          standbys: 0,
        }
      : emptySlot(config.slot);
    slot.leader = await leaderLockHolder(client, config.slot);
    if (slot.leader) {
      const standbys = await client.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name LIKE 'walnats-cdc@%' AND datname = current_database() AND pid <> $1`,
        [slot.leader.pid],
      );
      slot.standbys = Number(standbys.rows[0].n);
    }
    const pubRows = await client.query<{ puballtables: boolean }>('SELECT puballtables FROM pg_publication WHERE pubname = $1', [config.publication]);
    const publication: PublicationStatus = { name: config.publication, exists: pubRows.rows.length > 0, allTables: pubRows.rows[0]?.puballtables ?? false, tables: [] };
    if (publication.exists) {
      const t = await client.query<{ name: string }>(
        `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS name FROM pg_publication_tables WHERE pubname = $1 ORDER BY schemaname, tablename`,
        [config.publication],
      );
      publication.tables = t.rows.map((r) => r.name);
    }
    return { database: head.rows[0].db, serverLsn: head.rows[0].lsn, slot, publication };
  } catch (err) {
    throw new Error('cannot query replication state from Postgres', { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

async function queryStream(config: StatusConfig, name: string, timeoutMs: number): Promise<StreamStatus> {
  const result = emptyStream(name);
  let nc: NatsConnection;
  try {
    // Unlike the daemon, status does not wait for NATS to come back: it reports the outage.
    nc = await connect({
      ...natsConnectionOptions({ ...config }, 'walnats status'),
      waitOnFirstConnect: false,
      reconnect: false,
      maxReconnectAttempts: 0,
      timeout: timeoutMs,
    });
  } catch (err) {
    result.error = `cannot connect to NATS at ${config.natsUrl.join(', ')}: ${errorText(err)}`;
    return result;
  }
  try {
    const jsm: JetStreamManager = await jetstreamManager(nc, { timeout: timeoutMs });
    let info;
    try {
      info = await jsm.streams.info(name);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return result;
      throw err;
    }
    Object.assign(result, {
      exists: true,
      messages: info.state.messages,
      bytes: info.state.bytes,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      consumers: info.state.consumer_count,
    });
    try {
      const last = await readLastPosition(jsm, name);
      result.lastPosition = last ? { commitLsn: formatLsn(last.commitLsn), seq: last.seq } : null;
    } catch (err) {
      result.error = `cannot read the last position: ${errorText(err)}`;
    }
    return result;
  } catch (err) {
    result.error = `cannot read stream ${name}: ${errorText(err)}`;
    return result;
  } finally {
    await nc.close().catch(() => {});
  }
}

// ── text form ──────────────────────────────────────────────────────────────────────

function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]} (${n} bytes)`;
}

/** Aligned human text of a status report. */
export function formatStatus(s: WalnatsStatus): string {
  const rows: Array<[string, string]> = [];
  const add = (label: string, value: string) => rows.push([label, value]);

  add('database', s.database ?? '?');
  if (s.serverLsn) add('server lsn', s.serverLsn);
  if (s.postgresError) add('postgres', `ERROR ${s.postgresError}`);

  const sl = s.slot;
  if (!s.postgresError) {
    if (!sl.exists) add('slot', `${sl.name}: missing`);
    else {
      add('slot', `${sl.name}: ${sl.active ? `active (walsender pid ${sl.activePid})` : 'inactive'}${sl.plugin && sl.plugin !== 'pgoutput' ? `, plugin ${sl.plugin}` : ''}`);
      add('  confirmed lsn', sl.confirmedFlushLsn ?? '-');
      add('  restart lsn', sl.restartLsn ?? '-');
      add('  lag', `${sl.lagBytes === null ? '-' : bytesText(sl.lagBytes)}${sl.lagSeconds === null ? '' : `, ${sl.lagSeconds.toFixed(3)} s`}`);
      add('  wal status', sl.walStatus ?? '-');
      add('  active instance', sl.leader ? `${sl.leader.name} (holds the leader lock on backend pid ${sl.leader.pid}${sl.leader.addr ? `, ${sl.leader.addr}` : ''})` : 'none');
      add('  standbys', String(sl.standbys));
    }
    const p = s.publication;
    if (!p.exists) add('publication', `${p.name}: missing`);
    else {
      add('publication', `${p.name}: ${p.allTables ? 'all tables' : `${p.tables.length} table${p.tables.length === 1 ? '' : 's'}`}`);
      if (!p.allTables && p.tables.length) add('  tables', p.tables.join(', '));
    }
  }

  const st = s.stream;
  if (!st.exists) add('stream', `${st.name || '?'}: ${st.error ? `ERROR ${st.error}` : 'missing'}`);
  else {
    add('stream', st.name);
    add('  messages', `${st.messages}, ${bytesText(st.bytes)}`);
    add('  sequences', `${st.firstSeq}..${st.lastSeq}`);
    add('  last position', st.lastPosition ? `${st.lastPosition.commitLsn} seq ${st.lastPosition.seq}` : '-');
    add('  consumers', String(st.consumers));
    if (st.error) add('  error', st.error);
  }

  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, v]) => l.padEnd(width) + v).join('\n') + '\n';
}

/** True when a part could not be read (the exit code of `walnats status` is then 1). */
export function statusHasErrors(s: WalnatsStatus): boolean {
  return Boolean(s.postgresError || s.stream.error);
}
