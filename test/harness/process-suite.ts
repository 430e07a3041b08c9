/**
 * Shared set-up of the suites that run `walnats cdc` as real processes: one Postgres and one
 * nats-server per file, a reader connection, the daemons started by a test killed after it,
 * and the `ledger` load whose expected change list the verifier compares the stream with.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import { startPostgres, type PgServer, type PgServerOptions } from './postgres.ts';
import { startNats, type NatsServer } from './nats.ts';
import { spawnDaemon, type DaemonProcess } from './daemon-process.ts';
import { waitForLastSeq, type StoredEvent } from './stream.ts';
import { waitFor } from './ports.ts';
import type { ExpectedChange } from './verify.ts';
import { connectNats } from '../../src/nats-connection.ts';
import { defaultStreamName } from '../../src/events/subject.ts';
import { parseLsn } from '../../src/lsn.ts';

export interface ProcessSuite {
  readonly pgs: PgServer;
  readonly nats: NatsServer;
  readonly nc: NatsConnection;
  /** A fresh database with a `ledger` table, and ways to run daemons against it. */
  setup(name: string, env?: Record<string, string>): Promise<DaemonSetup>;
  /** Waits until the stream's last sequence reaches `count`, then reads it whole. */
  waitForAll(stream: string, count: number, timeoutMs?: number): Promise<StoredEvent[]>;
}

export interface DaemonSetup {
  db: string;
  stream: string;
  env: Record<string, string>;
  sql(text: string, params?: unknown[]): Promise<unknown[]>;
  start(extra?: Record<string, string>): DaemonProcess;
  /** Starts a daemon and waits until it streams (changes before that are the snapshot's). */
  startStreaming(extra?: Record<string, string>): Promise<DaemonProcess>;
}

export function useProcessSuite(readerName: string, pgOptions: PgServerOptions = {}): ProcessSuite {
  let pgs: PgServer;
  let nats: NatsServer;
  let nc: NatsConnection;
  const running: DaemonProcess[] = [];
  beforeAll(async () => {
    [pgs, nats] = await Promise.all([startPostgres(pgOptions), startNats()]);
    nc = await connectNats({ natsUrl: [nats.url] }, readerName);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((d) => d.kill('SIGKILL')));
  });
  afterAll(async () => {
    await nc?.close();
    await Promise.all([pgs?.destroy(), nats?.destroy()]);
  });
  return {
    get pgs() {
      return pgs;
    },
    get nats() {
      return nats;
    },
    get nc() {
      return nc;
    },
    async setup(name, extraEnv = {}) {
      const db = await pgs.createDatabase(name);
      await pgs.sql('CREATE TABLE ledger (id bigint PRIMARY KEY, v int, pad text)', [], db);
      const env = { WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, WALNATS_SLOT: db, WALNATS_STATUS_INTERVAL: '200ms', ...extraEnv };
      const start = (extra: Record<string, string> = {}) => {
        const d = spawnDaemon({ ...env, ...extra });
        running.push(d);
        return d;
      };
      return {
        db,
        stream: defaultStreamName('walnats', db),
        env,
        sql: (text, params = []) => pgs.sql(text, params, db),
        start,
        async startStreaming(extra = {}) {
          const d = start(extra);
          await waitFor('daemon streaming', async () => /streaming changes/.test(d.log()) || undefined, 30_000);
          return d;
        },
      };
    },
    waitForAll(stream, count, timeoutMs = 120_000) {
      return waitForLastSeq(nc, stream, count, timeoutMs);
    },
  };
}

/**
 * Writes `txns` transactions of `rows` inserts and one update each into `ledger` (ids after
 * `from`); returns the changes the stream must hold. `onTxn` gets an LSN at or after each
 * commit's end.
 */
export async function loadLedger(
  pgUrl: string,
  txns: number,
  rows: number,
  from = 0,
  onTxn?: (i: number, lsnAfter: bigint) => void | Promise<void>,
): Promise<ExpectedChange[]> {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  const expected: ExpectedChange[] = [];
  try {
    let id = from;
    for (let t = 0; t < txns; t++) {
      const first = id + 1;
      id += rows;
      await c.query('BEGIN');
      await c.query(`INSERT INTO ledger SELECT g, 0, repeat('x', 60) FROM generate_series($1::bigint, $2::bigint) g`, [first, id]);
      await c.query('UPDATE ledger SET v = v + 1 WHERE id = $1', [first]);
      await c.query('COMMIT');
      for (let k = first; k <= id; k++) expected.push({ op: 'c', id: k, v: 0 });
      expected.push({ op: 'u', id: first, v: 1 });
      if (onTxn) {
        const r = await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
        await onTxn(t, parseLsn(r.rows[0].lsn));
      }
    }
  } finally {
    await c.end();
  }
  return expected;
}
