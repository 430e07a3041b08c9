/**
 * Initial snapshots and backfills (docs/snapshots.md).
 *
 * Initial snapshot (`onNewSlot`): every published table is read inside the snapshot the new
 * slot exported, and each row published as an `op: "r"` event at the slot's consistent point
 * (seq 0, before anything the stream sends); a control event after each table records
 * progress. Streaming starts only once every read is acknowledged.
 *
 * Backfill (`onSession` observer): chunks in primary-key order, each between two watermarks
 * written to the WAL with `pg_logical_emit_message` (DBLog). Between the low and the high
 * watermark the observer notes the keys of the table's live changes; when the high
 * watermark reaches the daemon, the chunk's rows are published (at the watermark's position)
 * except those whose key changed in between — their live change, published before, is newer.
 * A control event after each chunk holds the state (last key, rows), so a restart resumes
 * from the last finished chunk. An initial snapshot that did not finish is resumed the same way.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import { formatLsn, type Lsn } from '../lsn.ts';
import type { Change, Relation, TupleData } from '../decoder/types.ts';
import type { OutboundEvent } from '../events/envelope.ts';
import type { ChangeObserver, NewSlotContext, SessionContext } from '../cdc/daemon.ts';
import type { Publisher } from '../publisher/publisher.ts';
import type { SnapshotMode } from '../config.ts';
import { quoteLiteral } from '../replication/sql.ts';
import { waitForCommittedInvisible } from '../replication/visibility.ts';
import {
  BACKFILL_MIN_SERVER_VERSION,
  BACKFILL_NEEDS_PG14,
  chunkReadSql,
  describeTable,
  fullReadSql,
  openSnapshotConnection,
  publishedTables,
  serverVersionNum,
  SnapshotTableError,
  type SnapshotTable,
} from './catalog.ts';
import {
  buildControlEvent,
  nextRowIndex,
  readRequest,
  recoverState,
  REQUEST_PREFIX,
  WATERMARK_PREFIX,
  type ControlKind,
  type SnapshotJob,
  type SnapshotRequest,
  type SnapshotState,
  type TableProgress,
} from './control.ts';

export type { SnapshotMode };

export interface SnapshotMetrics {
  /** Rows published as read events, per `schema.table`. */
  rows(table: string, n: number): void;
  /** Estimated rows of a table being snapshotted (pg_class.reltuples). */
  estimated(table: string, n: number): void;
}

export interface SnapshotOptions {
  pgUrl: string;
  publication: string;
  prefix: string;
  mode: SnapshotMode;
  logger: Logger;
  metrics?: SnapshotMetrics;
  /** Rows per backfill chunk (default 5000). */
  chunkSize?: number;
  /** Rows per FETCH of the initial snapshot (default 5000). */
  fetchSize?: number;
  /** `initial_only`: called once no snapshot work is left. */
  onInitialDone?: () => void;
}

export interface SnapshotHooks {
  onNewSlot?: (ctx: NewSlotContext) => Promise<void>;
  onSession: (ctx: SessionContext) => Promise<ChangeObserver | undefined>;
}

const MAX_REMEMBERED_REQUESTS = 200;
const PROGRESS_LOG_MS = 5000;

/** Logs rows done / estimated / rate per table every few seconds and feeds the metrics. */
function progressReporter(log: Logger, metrics: SnapshotMetrics | undefined, what: string) {
  let lastLog = 0;
  let startMs = Date.now();
  let startRows = 0;
  return {
    start(tp: TableProgress) {
      startMs = Date.now();
      startRows = tp.rows;
      if (tp.estimated !== null) metrics?.estimated(`${tp.schema}.${tp.table}`, tp.estimated);
      log.info({ table: `${tp.schema}.${tp.table}`, rows: tp.rows, estimated: tp.estimated }, `${what}: reading ${tp.schema}.${tp.table}`);
    },
    rows(tp: TableProgress, n: number, force = false) {
      metrics?.rows(`${tp.schema}.${tp.table}`, n);
      const now = Date.now();
      if (!force && now - lastLog < PROGRESS_LOG_MS) return;
      lastLog = now;
      const secs = Math.max(0.001, (now - startMs) / 1000);
      log.info(
        { table: `${tp.schema}.${tp.table}`, rows: tp.rows, estimated: tp.estimated, rowsPerSecond: Math.round((tp.rows - startRows) / secs), done: tp.done },
        `${what}: ${tp.schema}.${tp.table} ${tp.rows}${tp.estimated !== null ? `/~${tp.estimated}` : ''} rows${tp.done ? ', done' : ''}`,
      );
    },
  };
}

async function sendAll(publisher: Publisher, ev: OutboundEvent): Promise<void> {
  if (!publisher.send(ev)) await publisher.whenRoom();
}

function progressOf(t: SnapshotTable, ref: { schema: string; table: string }): TableProgress {
  return { schema: ref.schema, table: ref.table, oid: t.relation.oid, rows: 0, estimated: t.estimatedRows, after: null, done: false };
}

export function createSnapshotHooks(opts: SnapshotOptions): SnapshotHooks {
  const log = opts.logger;
  const chunkSize = opts.chunkSize ?? 5000;
  const fetchSize = opts.fetchSize ?? 5000;

  async function initialSnapshot(ctx: NewSlotContext): Promise<void> {
    const lsn = ctx.consistentPoint;
    const conn = await openSnapshotConnection(opts.pgUrl);
    const progress = progressReporter(log, opts.metrics, 'initial snapshot');
    const started = Date.now();
    try {
      await conn.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await conn.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(ctx.snapshotName)}`);
      const tables: SnapshotTable[] = [];
      const job: SnapshotJob = { id: ctx.snapshotName, kind: 'initial', lsn: formatLsn(lsn), tables: [], startedMs: started };
      for (const ref of await publishedTables(conn, opts.publication)) {
        const t = await describeTable(conn, ref, opts.publication);
        await ctx.prepareRelation(t.relation);
        tables.push(t);
        job.tables.push(progressOf(t, ref));
      }
      const state: SnapshotState = { jobs: [job], requests: [] };
      const control = (event: ControlKind, tp: TableProgress | null, tag: string) =>
        sendAll(ctx.publisher, buildControlEvent(opts.prefix, ctx.database, lsn, job, event, tp, state, tag));
      log.info({ snapshot: job.id, lsn: job.lsn, tables: job.tables.length }, 'initial snapshot: started');
      await control('started', null, 'start');
      for (let i = 0; i < tables.length; i++) {
        const t = tables[i];
        const tp = job.tables[i];
        progress.start(tp);
        await conn.query(`DECLARE walnats_snapshot NO SCROLL CURSOR FOR ${fullReadSql(t)}`);
        for (;;) {
          const r = await conn.query<TupleData>({ text: `FETCH ${fetchSize} FROM walnats_snapshot`, rowMode: 'array' });
          for (const row of r.rows) {
            // Awaited only when the window is full: a batch is one burst for the publisher
            // (sparse acks: the burst's last event asks for the ack, not every row).
            const ev = ctx.builder.buildReadEvent(t.relation, row, { snapshotId: job.id, rowIndex: tp.rows++, lsn, tsMs: started });
            if (!ctx.publisher.send(ev)) await ctx.publisher.whenRoom();
          }
          progress.rows(tp, r.rows.length);
          if (r.rows.length < fetchSize) break;
        }
        await conn.query('CLOSE walnats_snapshot');
        tp.done = true;
        progress.rows(tp, 0, true);
        await control('table_done', tp, `t${tp.oid}`);
      }
      state.jobs = [];
      await control('finished', null, 'end');
      await ctx.publisher.flush();
      await conn.query('COMMIT');
      const rows = job.tables.reduce((n, t) => n + t.rows, 0);
      log.info({ snapshot: job.id, rows, ms: Date.now() - started }, `initial snapshot: finished, ${rows} rows`);
    } finally {
      await conn.end().catch(() => {});
    }
  }

  async function onSession(ctx: SessionContext): Promise<ChangeObserver | undefined> {
    const rec = await recoverState(ctx.jsm, ctx.stream, opts.prefix, ctx.database);
    const state = rec.state;
    for (const job of state.jobs) {
      if (job.kind === 'initial') {
        log.warn({ snapshot: job.id }, 'the initial snapshot did not finish: resuming its remaining tables as a backfill');
        job.kind = 'backfill';
      }
    }
    if (opts.mode !== 'never' && rec.neverSnapshotted && !ctx.slotCreated) {
      // The slot exists but its initial snapshot never started (a crash right after creating
      // the slot): read every table as a backfill instead.
      const db = await openSnapshotConnection(opts.pgUrl);
      try {
        const tables = await publishedTables(db, opts.publication);
        const id = `initial-${randomBytes(6).toString('hex')}`;
        log.warn({ snapshot: id }, 'the stream holds no initial snapshot of this slot: taking it as a backfill');
        state.jobs.push({ id, kind: 'backfill', tables: tables.map((t) => ({ ...t, rows: 0, estimated: null, after: null, done: false })), startedMs: Date.now() });
      } finally {
        await db.end().catch(() => {});
      }
    }
    const engine = new Backfill(ctx, state, opts, chunkSize);
    for (const req of rec.laterRequests) engine.accept(req);
    engine.start();
    return engine;
  }

  return {
    onNewSlot: opts.mode === 'never' ? undefined : initialSnapshot,
    onSession,
  };
}

interface Pending {
  token: string;
  job: SnapshotJob;
  tp: TableProgress | undefined;
  table: SnapshotTable | null;
  /** Names of the table's primary key columns, in key order. */
  keyNames: string[];
  rows: TupleData[] | null;
  open: boolean;
  changed: Set<string>;
  /** A change of the table arrived without its primary key: the chunk must be read again. */
  unknownKey: boolean;
  truncated: boolean;
  seen: () => void;
}

class Backfill implements ChangeObserver {
  private readonly session = randomBytes(6).toString('hex');
  private chunkNo = 0;
  private pending: Pending | null = null;
  private closed = false;
  private wake: (() => void) | undefined;
  private conn: pg.Client | undefined;
  private readonly fixed = new Set<string>();
  private readonly keyIndex = new WeakMap<Relation, number[] | null>();
  private readonly progress;
  private loop: Promise<void> | undefined;
  private reported: TableProgress | undefined;

  constructor(
    private readonly ctx: SessionContext,
    private readonly state: SnapshotState,
    private readonly opts: SnapshotOptions,
    private readonly chunkSize: number,
  ) {
    this.progress = progressReporter(opts.logger, opts.metrics, 'backfill');
  }

  accept(req: SnapshotRequest): void {
    if (this.state.requests.includes(req.id)) return;
    this.state.requests.push(req.id);
    if (this.state.requests.length > MAX_REMEMBERED_REQUESTS) this.state.requests.splice(0, this.state.requests.length - MAX_REMEMBERED_REQUESTS);
    this.state.jobs.push({
      id: req.id,
      kind: 'backfill',
      tables: req.tables.map((t) => ({ schema: t.schema, table: t.table, rows: 0, estimated: null, after: null, done: false })),
      startedMs: Date.now(),
    });
    this.opts.logger.info({ snapshot: req.id, tables: req.tables.map((t) => `${t.schema}.${t.table}`) }, 'backfill requested');
    this.wake?.();
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let backoff = 200;
    let idleReported = false;
    while (!this.closed) {
      const job = this.state.jobs[0];
      if (!job) {
        if (!idleReported && this.opts.mode === 'initial_only') this.opts.onInitialDone?.();
        idleReported = true;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      try {
        await this.step(job);
        backoff = 200;
      } catch (err) {
        if (this.closed) break;
        this.pending = null;
        this.opts.logger.warn({ err, snapshot: job.id }, `backfill chunk failed; retrying in ${backoff} ms`);
        await this.conn?.end().catch(() => {});
        this.conn = undefined;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private async connection(): Promise<pg.Client> {
    this.conn ??= await openSnapshotConnection(this.opts.pgUrl, 'walnats-backfill');
    return this.conn;
  }

  private async emit(token: string, w: 'low' | 'high'): Promise<void> {
    const conn = await this.connection();
    await conn.query('SELECT pg_logical_emit_message(true, $1, $2)', [WATERMARK_PREFIX, JSON.stringify({ token, w })]);
  }

  private async step(job: SnapshotJob): Promise<void> {
    const conn = await this.connection();
    if ((await serverVersionNum(conn)) < BACKFILL_MIN_SERVER_VERSION) {
      // Its watermarks would never come back (Postgres 13): say so instead of waiting forever.
      this.opts.logger.error({ snapshot: job.id, tables: job.tables.map((t) => `${t.schema}.${t.table}`) }, `backfill not possible: ${BACKFILL_NEEDS_PG14}`);
      this.state.jobs.splice(this.state.jobs.indexOf(job), 1);
      return;
    }
    const tp = job.tables.find((t) => !t.done);
    let table: SnapshotTable | null = null;
    if (tp) {
      try {
        table = await describeTable(conn, tp, this.opts.publication);
        if (table.keyColumns.length === 0) {
          throw new SnapshotTableError(
            `table ${tp.schema}.${tp.table} has no primary key: a backfill reads in key order and merges by key; add a primary key, or drop the slot to take a new initial snapshot`,
          );
        }
      } catch (err) {
        if (!(err instanceof SnapshotTableError)) throw err;
        tp.error = err.message;
        this.opts.logger.error({ snapshot: job.id, table: `${tp.schema}.${tp.table}` }, `backfill: ${err.message}`);
        table = null;
      }
      if (table) {
        if (tp.oid === undefined) {
          tp.oid = table.relation.oid;
          tp.estimated = table.estimatedRows;
        }
        const fixKey = `${job.id}\u0000${tp.oid}`;
        if (!this.fixed.has(fixKey)) {
          this.fixed.add(fixKey);
          tp.rows = await nextRowIndex(this.ctx.jsm, this.ctx.stream, this.opts.prefix, this.ctx.database, job.id, tp);
        }
        if (this.reported !== tp) {
          this.reported = tp;
          this.progress.start(tp);
        }
        await this.ctx.prepareRelation(table.relation);
      }
    }
    let seen!: () => void;
    const done = new Promise<void>((r) => (seen = r));
    const keyNames = table ? table.keyColumns.map((i) => table.relation.columns[i].name) : [];
    const p: Pending = { token: `${this.session}.${++this.chunkNo}`, job, tp, table, keyNames, rows: null, open: false, changed: new Set(), unknownKey: false, truncated: false, seen };
    this.pending = p;
    await this.emit(p.token, 'low');
    // A commit written before the low watermark but still invisible (held by a synchronous
    // standby) would be missing from the chunk while its change sits before the window:
    // the chunk would publish the row as it was before it (replication/visibility.ts).
    await waitForCommittedInvisible(conn, {
      cancelled: () => this.closed,
      onSlow: (xids, ms) => this.opts.logger.warn({ snapshot: job.id, xids, ms }, 'backfill: waiting for committed transactions to become visible (synchronous replication?)'),
    });
    if (tp && table) {
      const r = await conn.query<TupleData>({ text: chunkReadSql(table, tp.after), values: [...(tp.after ?? []), this.chunkSize], rowMode: 'array' });
      p.rows = r.rows;
    } else {
      p.rows = [];
    }
    await this.emit(p.token, 'high');
    await done;
  }

  /** Key text of a tuple (JSON array of the key columns' texts), or null when it lacks the key. */
  private keyOf(rel: Relation, tuple: TupleData | null, keyNames: string[]): string | null {
    if (!tuple) return null;
    let idx = this.keyIndex.get(rel);
    if (idx === undefined) {
      const found = keyNames.map((n) => rel.columns.findIndex((c) => c.name === n));
      idx = found.every((i) => i >= 0) ? found : null;
      this.keyIndex.set(rel, idx);
    }
    if (!idx) return null;
    const vals: string[] = [];
    for (const i of idx) {
      const v = tuple[i];
      if (typeof v !== 'string') return null;
      vals.push(v);
    }
    return JSON.stringify(vals);
  }

  observe(c: Change): { events?: OutboundEvent[]; drop?: boolean } | undefined {
    if (c.kind === 'message') {
      if (c.prefix === WATERMARK_PREFIX) {
        const p = this.pending;
        let m: { token?: string; w?: string } = {};
        try {
          m = JSON.parse(new TextDecoder().decode(c.content));
        } catch {
          /* not ours */
        }
        if (!p || m.token !== p.token) return { drop: true };
        if (m.w === 'low') {
          p.open = true;
          return { drop: true };
        }
        if (!p.open) return { drop: true };
        const events = this.finishChunk(p, c.commitLsn);
        this.pending = null;
        p.seen();
        return { drop: true, events };
      }
      if (c.prefix === REQUEST_PREFIX) {
        const req = readRequest(c.content);
        if ('problem' in req) {
          this.opts.logger.warn(
            { lsn: formatLsn(c.lsn ?? c.commitLsn), content: new TextDecoder().decode(c.content.subarray(0, 500)) },
            `ignoring a snapshot request message: ${req.problem}`,
          );
        } else this.accept(req);
      }
      return undefined;
    }
    const p = this.pending;
    if (!p?.open || !p.table) return undefined;
    if (c.kind !== 'insert' && c.kind !== 'update' && c.kind !== 'delete' && c.kind !== 'truncate') return undefined;
    if (c.relation.oid !== p.table.relation.oid) return undefined;
    if (c.kind === 'truncate') {
      p.truncated = true;
      return undefined;
    }
    for (const tuple of [c.before, c.after]) {
      if (!tuple) continue;
      const k = this.keyOf(c.relation, tuple, p.keyNames);
      if (k === null) p.unknownKey = true;
      else p.changed.add(k);
    }
    return undefined;
  }

  private finishChunk(p: Pending, lsn: Lsn): OutboundEvent[] {
    const { job, tp, table } = p;
    const events: OutboundEvent[] = [];
    if (p.unknownKey) {
      this.opts.logger.info({ snapshot: job.id }, 'backfill: a live change of the table came without its primary key; reading the chunk again');
      return events;
    }
    let kind: ControlKind = 'chunk';
    if (tp) {
      if (table && p.rows) {
        const tsMs = Date.now();
        let n = 0;
        if (!p.truncated) {
          for (const row of p.rows) {
            const key = JSON.stringify(table.keyColumns.map((i) => row[i]));
            if (p.changed.has(key)) continue;
            events.push(this.ctx.builder.buildReadEvent(table.relation, row, { snapshotId: job.id, rowIndex: tp.rows++, lsn, tsMs }));
            n++;
          }
        }
        const last = p.rows[p.rows.length - 1];
        if (last) tp.after = table.keyColumns.map((i) => last[i] as string);
        if (p.rows.length < this.chunkSize) tp.done = true;
        this.progress.rows(tp, n, tp.done);
      } else {
        tp.done = true; // given up: tp.error says why
      }
      if (tp.done) kind = 'table_done';
    }
    if (job.tables.every((t) => t.done)) {
      this.state.jobs.splice(this.state.jobs.indexOf(job), 1);
      kind = 'finished';
      const rows = job.tables.reduce((s, t) => s + t.rows, 0);
      this.opts.logger.info({ snapshot: job.id, rows, ms: Date.now() - job.startedMs }, `backfill ${job.id}: finished, ${rows} rows`);
    }
    events.push(buildControlEvent(this.opts.prefix, this.ctx.database, lsn, job, kind, tp ?? null, this.state, formatLsn(lsn)));
    return events;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending?.seen();
    this.pending = null;
    this.wake?.();
    await this.loop?.catch(() => {});
    await this.conn?.end().catch(() => {});
  }
}

