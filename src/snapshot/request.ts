/**
 * `walnats snapshot <table>…`: checks the tables, then writes a request into the WAL as a
 * transactional logical message (prefix `walnats.snapshot`), which the running daemon picks
 * up in commit order — and, being stored in the stream, still finds after a restart. In a
 * terminal it then follows the daemon's control events and draws a progress bar until the
 * backfill finishes (Ctrl-C stops watching, not the backfill).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import type { WalnatsConfig } from '../config.ts';
import { parseQualifiedName } from '../replication/sql.ts';
import { connectNats } from '../nats-connection.ts';
import { openCatalogConnection } from '../replication/connection.ts';
import { BACKFILL_MIN_SERVER_VERSION, BACKFILL_NEEDS_PG14, describeTable, serverVersionNum, SnapshotTableError, type TableRef } from './catalog.ts';
import { controlSubject, REQUEST_PREFIX, type ControlBody, type SnapshotRequest, type TableProgress } from './control.ts';

export interface SnapshotRequestResult {
  id: string;
  tables: string[];
  /** LSN of the request in the WAL. */
  lsn: string;
  /** Set when the command waited for the backfill to finish. */
  rows?: number;
}

export interface RequestOptions {
  /** Follow progress until the backfill finishes (default: when stderr is a terminal). */
  wait?: boolean;
  /** Where the progress bar goes (default process.stderr). */
  out?: NodeJS.WriteStream;
}

/** Checks every table (exists, is published, has a primary key); all problems in one error. */
export async function checkBackfillTables(db: pg.Client, publication: string, refs: TableRef[]): Promise<void> {
  const problems: string[] = [];
  if ((await serverVersionNum(db)) < BACKFILL_MIN_SERVER_VERSION) problems.push(BACKFILL_NEEDS_PG14);
  for (const ref of refs) {
    try {
      const t = await describeTable(db, ref, publication);
      if (t.keyColumns.length === 0) {
        problems.push(
          `${ref.schema}.${ref.table} has no primary key: a backfill reads in key order and merges by key with live changes. ` +
            `Add a primary key, or drop the slot so that the next start takes a new initial snapshot (which reads keyless tables whole)`,
        );
      }
    } catch (err) {
      if (!(err instanceof SnapshotTableError)) throw err;
      problems.push(err.message);
    }
  }
  if (problems.length > 0) throw new Error(`cannot backfill:\n  - ${problems.join('\n  - ')}`);
}

function newRequestId(): string {
  return `bf-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Writes the request into the WAL; returns its id and LSN. */
export async function emitSnapshotRequest(db: pg.Client, refs: TableRef[], id = newRequestId()): Promise<{ id: string; lsn: string }> {
  const req: SnapshotRequest = { id, tables: refs.map((r) => ({ schema: r.schema, table: r.table })) };
  const r = await db.query<{ lsn: string }>('SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn', [REQUEST_PREFIX, JSON.stringify(req)]);
  return { id, lsn: r.rows[0].lsn };
}

export async function requestSnapshot(config: WalnatsConfig, tables: string[], options: RequestOptions = {}): Promise<SnapshotRequestResult> {
  const refs = tables.map(parseQualifiedName);
  const out = options.out ?? process.stderr;
  const wait = options.wait ?? !!out.isTTY;
  const db = await openCatalogConnection(config.pgUrl, 'walnats-snapshot-request');
  let nc: NatsConnection | undefined;
  try {
    await checkBackfillTables(db, config.publication, refs);
    const database = (await db.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db;
    let watcher: Promise<number> | undefined;
    const id = newRequestId();
    if (wait) {
      nc = await connectNats(config, 'walnats-snapshot');
      watcher = watchProgress(nc, controlSubject(config.prefix, database), id, out);
      await nc.flush();
    }
    const { lsn } = await emitSnapshotRequest(db, refs, id);
    const result: SnapshotRequestResult = { id, tables: refs.map((r) => `${r.schema}.${r.table}`), lsn };
    if (watcher) result.rows = await watcher;
    return result;
  } finally {
    await db.end().catch(() => {});
    await nc?.close().catch(() => {});
  }
}

/**
 * One progress line: the bar and percentage over the whole job, then the table being read with
 * its own rows, then (several tables) the job's rows:
 * `[#####-----]  45% public.orders 45000/~100000 rows · 12000 rows/s`
 * `[########--]  80% public.pairs 600/~1000 rows · 2 tables 50600/~51000 rows · 12000 rows/s`.
 */
export function progressLine(tables: TableProgress[], current: TableProgress | null, finished: boolean, elapsedMs: number): string {
  const rows = tables.reduce((s, t) => s + t.rows, 0);
  const estimateOf = (t: TableProgress) => Math.max(t.estimated ?? 0, t.rows);
  const estimated = tables.reduce((s, t) => s + estimateOf(t), 0);
  const frac = finished ? 1 : estimated > 0 ? Math.min(1, rows / estimated) : 0;
  const width = 30;
  const filled = Math.round(frac * width);
  const count = (n: number, est: number) => `${n}${est ? `/~${est}` : ''} rows`;
  const parts = [`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(frac * 100)).padStart(3)}%`];
  if (current) {
    const cur = tables.find((t) => t.schema === current.schema && t.table === current.table) ?? current;
    parts.push(` ${current.schema}.${current.table} ${count(cur.rows, estimateOf(cur))}`);
  }
  if (tables.length > 1) parts.push(` · ${tables.length} tables ${count(rows, estimated)}`);
  parts.push(` · ${Math.round(rows / Math.max(0.001, elapsedMs / 1000))} rows/s`);
  return parts.join('');
}

/** Draws a `progressLine` on each control event until the job finishes. */
async function watchProgress(nc: NatsConnection, subject: string, id: string, out: NodeJS.WriteStream): Promise<number> {
  const sub = nc.subscribe(subject);
  const started = Date.now();
  const seen = new Map<string, TableProgress>();
  out.write(`walnats: backfill ${id} requested; waiting for the daemon…\n`);
  for await (const m of sub) {
    let body: ControlBody;
    try {
      body = m.json<ControlBody>();
    } catch {
      continue;
    }
    if (body.snapshot?.id !== id) continue;
    const job = body.state.jobs.find((j) => j.id === id);
    for (const t of [...(job?.tables ?? []), ...(body.table ? [body.table] : [])]) seen.set(`${t.schema}.${t.table}`, t);
    const tables = [...seen.values()];
    out.write(`\r${progressLine(tables, body.table ?? null, body.event === 'finished', Date.now() - started)}\u001b[K`);
    if (body.event === 'finished') {
      out.write('\n');
      sub.unsubscribe();
      return tables.reduce((s, t) => s + t.rows, 0);
    }
  }
  return 0;
}
