/**
 * Snapshot throughput: rows/s of walnats' initial snapshot (a real `walnats cdc` process
 * reading a table in the slot's exported snapshot and publishing every row to JetStream),
 * and of a backfill of the same table while streaming, beside `COPY … TO STDOUT` of the same
 * table through psql to /dev/null — the ceiling of reading those rows out of Postgres.
 *
 *   npx tsx bench/snapshot.ts          (standalone; WALNATS_BENCH_QUICK=1 for a smaller table)
 *   bench/run.ts calls benchSnapshot()
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { startPostgres, findPgBinDir } from '../test/harness/postgres.ts';
import { startNats } from '../test/harness/nats.ts';
import { QUICK, deleteStream, fmt, log, ratioOf, startWalnats, waitForLog, type Env, type Result } from './lib.ts';
import { defaultStreamName } from '../src/events/subject.ts';
import { emitSnapshotRequest } from '../src/snapshot/request.ts';

export type BenchResult = Result;

const ROWS = QUICK ? 50_000 : 300_000;

/** The `ms` and `rows` fields of the first JSON log line whose msg matches. */
function logFields(text: string, re: RegExp): { ms: number; rows: number } {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const e = JSON.parse(line) as { msg?: string; ms?: number; rows?: number };
      if (e.msg && re.test(e.msg) && typeof e.ms === 'number') return { ms: e.ms, rows: e.rows ?? NaN };
    } catch {
      /* partial line */
    }
  }
  throw new Error(`no log line ${re}`);
}

async function copyCeiling(url: string, sql: string): Promise<number> {
  const psql = path.join(findPgBinDir(), 'psql');
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(psql, ['-X', '-q', '-d', url, '-c', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql exited ${code}: ${err}`))));
  });
  return performance.now() - t0;
}

async function createTable(env: Env, db: string): Promise<void> {
  await env.pg.sql(`CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, ts timestamptz NOT NULL DEFAULT clock_timestamp())`, [], db);
  await env.pg.sql(`INSERT INTO t (id, a, b) SELECT g, g, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, $1) g`, [ROWS], db);
  await env.pg.sql(`VACUUM ANALYZE t`, [], db);
}

export async function benchSnapshot(envIn?: Env): Promise<BenchResult[]> {
  let own: { stop(): Promise<void> } | undefined;
  let env = envIn;
  if (!env) {
    const [pgs, nats] = await Promise.all([startPostgres({ settings: { max_wal_size: '4GB' } }), startNats()]);
    const nc = await connect({ servers: nats.url });
    env = { pg: pgs, nats, nc };
    own = {
      async stop() {
        await nc.close();
        await Promise.all([pgs.destroy(), nats.destroy()]);
      },
    };
  }
  const results: BenchResult[] = [];
  try {
    const db = await env.pg.createDatabase('benchsnap');
    await createTable(env, db);
    const label = `${fmt(ROWS, 0)} rows × ~100 B`;

    // The ceiling: COPY of the same table, same columns, into /dev/null (best of two).
    const copyMs = Math.min(await copyCeiling(env.pg.url(db), 'COPY t TO STDOUT'), await copyCeiling(env.pg.url(db), 'COPY t TO STDOUT'));
    const copyRate = ROWS / (copyMs / 1000);
    log(`snapshot: COPY TO STDOUT ${fmt(copyRate, 0)} rows/s`);

    // Initial snapshot by a real walnats cdc process.
    const d = startWalnats(env, db, { WALNATS_SNAPSHOT_MODE: 'initial', WALNATS_SLOT: 'bench_snap' });
    try {
      await waitForLog(d, /initial snapshot: finished/, 600_000);
      const snap = logFields(d.log(), /initial snapshot: finished/);
      const rate = snap.rows / (snap.ms / 1000);
      log(`snapshot: walnats initial snapshot ${fmt(rate, 0)} rows/s (${fmt(snap.ms / 1000, 1)} s)`);
      results.push({
        area: 'Snapshot',
        name: `initial snapshot, ${label}`,
        value: rate,
        unit: 'rows/s',
        ceiling: { name: 'COPY … TO STDOUT (psql → /dev/null)', value: copyRate },
        ratio: ratioOf(rate, copyRate),
        detail: `${fmt(snap.ms / 1000, 1)} s for ${fmt(snap.rows, 0)} rows into JetStream; COPY ${fmt(copyMs / 1000, 2)} s`,
      });

      // A backfill of the same table while the daemon streams (chunks between WAL watermarks).
      await waitForLog(d, /streaming changes/, 60_000);
      const c = new pg.Client({ connectionString: env.pg.url(db) });
      await c.connect();
      await emitSnapshotRequest(c, [{ schema: 'public', table: 't' }], 'bench-backfill');
      await c.end();
      await waitForLog(d, /backfill bench-backfill: finished/, 600_000);
      const bf = logFields(d.log(), /backfill bench-backfill: finished/);
      const bfRate = bf.rows / (bf.ms / 1000);
      log(`snapshot: walnats backfill ${fmt(bfRate, 0)} rows/s (${fmt(bf.ms / 1000, 1)} s)`);
      results.push({
        area: 'Snapshot',
        name: `backfill while streaming, ${label}`,
        value: bfRate,
        unit: 'rows/s',
        ceiling: { name: 'COPY … TO STDOUT (psql → /dev/null)', value: copyRate },
        ratio: ratioOf(bfRate, copyRate),
        detail: `${fmt(bf.ms / 1000, 1)} s for ${fmt(bf.rows, 0)} rows, chunks of 5,000 between watermarks`,
      });
    } finally {
      await d.kill('SIGTERM');
      await env.pg.sql(`SELECT pg_drop_replication_slot('bench_snap')`, [], db).catch(() => {});
      await deleteStream(env.nc, defaultStreamName('walnats', db)).catch(() => {});
    }
  } finally {
    await own?.stop();
  }
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchSnapshot().then(
    (r) => {
      for (const x of r) process.stdout.write(`${x.name}: ${fmt(x.value, 0)} ${x.unit} (ceiling ${x.ceiling?.name}: ${fmt(x.ceiling?.value ?? NaN, 0)}, ratio ${fmt(x.ratio ?? NaN, 2)})\n`);
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
