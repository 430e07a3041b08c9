/**
 * Change events from JetStream: decoding, cursors, the shared live tail per table, and the
 * filters (role row filters and the client's `where`) evaluated on each event.
 */
import { timeSlicer } from './time-slice.ts';
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { GraphQLError } from 'graphql/index.js';
import type { Logger } from 'pino';
import { HEADER_COMMIT_LSN, HEADER_SCHEMA, HEADER_TABLE } from '../events/position.ts';
import { tableSubject, unescapeToken } from '../events/subject.ts';
import { parseLosslessJson, plainNumbers } from './json.ts';
import type { ColumnModel, TableModel } from './model.ts';
import type { BoolExp } from './permissions.ts';
import { lookupColumn } from './sql.ts';

export type EventOp = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'READ';
const OPS: Record<string, EventOp> = { c: 'INSERT', u: 'UPDATE', d: 'DELETE', t: 'TRUNCATE', r: 'READ' };

export interface DecodedEvent {
  streamSeq: number;
  schema: string;
  table: string;
  op: EventOp;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  unchanged: string[];
  commitLsn: string | null;
  seq: number | null;
  txid: bigint | null;
  commitTime: string | null;
  /**
   * `before`/`after` with the numbers a JS number cannot carry as JsonNumbers (jsonb numbers
   * as Postgres printed them); present only when the body held such numbers. `before`/`after`
   * themselves hold those numbers as parseLosslessJson gives them (int8 beyond 2^53 as strings).
   */
  exact?: { before: Record<string, unknown> | null; after: Record<string, unknown> | null };
}

const dec = new TextDecoder();

/** A name from the Walnats-Schema/Walnats-Table header, which carry escaped subject tokens. */
function headerName(m: Pick<JsMsg, 'headers'>, header: string): string {
  const token = m.headers?.get(header);
  if (!token) return '';
  try {
    return unescapeToken(token);
  } catch {
    return '';
  }
}

export function decodeEvent(m: Pick<JsMsg, 'seq' | 'data' | 'headers'>): DecodedEvent | null {
  let body: Record<string, unknown>;
  const seen = { exact: false };
  let exact: DecodedEvent['exact'];
  try {
    body = parseLosslessJson(dec.decode(m.data), true, seen) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (seen.exact) {
    exact = { before: (body.before as Record<string, unknown>) ?? null, after: (body.after as Record<string, unknown>) ?? null };
    body = plainNumbers(body) as Record<string, unknown>;
  }
  const op = OPS[body.op as string];
  if (!op) return null;
  const src = (body.source ?? {}) as Record<string, unknown>;
  const ts = typeof src.ts_ms === 'number' ? src.ts_ms : typeof body.ts_ms === 'number' ? body.ts_ms : null;
  return {
    streamSeq: m.seq,
    schema: String(src.schema ?? headerName(m, HEADER_SCHEMA)),
    table: String(src.table ?? headerName(m, HEADER_TABLE)),
    op,
    before: (body.before as Record<string, unknown>) ?? null,
    after: (body.after as Record<string, unknown>) ?? null,
    unchanged: Array.isArray(body.unchanged) ? (body.unchanged as string[]) : [],
    commitLsn: (src.commit_lsn as string) ?? m.headers?.get(HEADER_COMMIT_LSN) ?? null,
    seq: src.seq != null ? Number(src.seq) : null,
    txid: src.txid != null ? BigInt(src.txid as number | string) : null,
    commitTime: ts != null ? new Date(ts).toISOString() : null,
    ...(exact ? { exact } : {}),
  };
}

// ── cursors ────────────────────────────────────────────────────────────────────────

/** A Postgres snapshot (pg_current_snapshot): transactions visible to a query. */
export interface Snapshot { xmin: bigint; xmax: bigint; xip: bigint[] }
export interface Cursor { seq: number; snap?: Snapshot }

export function encodeCursor(c: Cursor): string {
  const s = c.snap ? `${c.seq}|${c.snap.xmin}:${c.snap.xmax}:${c.snap.xip.join(',')}` : String(c.seq);
  return 'w1' + Buffer.from(s).toString('base64url');
}

export function decodeCursor(text: string): Cursor {
  const bad = () => new GraphQLError('invalid cursor', { extensions: { code: 'invalid-cursor' } });
  if (typeof text !== 'string' || !text.startsWith('w1') || text.length > 4096) throw bad();
  const s = Buffer.from(text.slice(2), 'base64url').toString();
  const m = /^(\d{1,16})(?:\|(\d{1,20}):(\d{1,20}):((?:\d{1,20}(?:,\d{1,20})*)?))?$/.exec(s);
  if (!m) throw bad();
  const c: Cursor = { seq: Number(m[1]) };
  if (m[2]) c.snap = parseSnapshot(`${m[2]}:${m[3]}:${m[4]}`);
  return c;
}

export function parseSnapshot(s: string): Snapshot {
  const [xmin, xmax, xip] = s.split(':');
  return { xmin: BigInt(xmin), xmax: BigInt(xmax), xip: xip ? xip.split(',').map((x) => BigInt(x)) : [] };
}

/** Was this event's transaction already visible to the snapshot (so its data was read)? */
export function visibleIn(snap: Snapshot, txid32: bigint): boolean {
  // Event xids are 32-bit; widen with the snapshot's epoch.
  const epoch = snap.xmax >> 32n;
  let x = (epoch << 32n) | (txid32 & 0xffffffffn);
  const half = 1n << 31n;
  if (x - snap.xmax > half) x -= 1n << 32n;
  else if (snap.xmax - x > half) x += 1n << 32n;
  if (x < snap.xmin) return true;
  if (x >= snap.xmax) return false;
  return !snap.xip.includes(x);
}

// ── channel: an async iterator that ends at once on return() ───────────────────────

export class Channel<T> implements AsyncIterableIterator<T> {
  private queue: T[] = [];
  private waiting: Array<{ resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void }> = [];
  private done = false;
  private error: unknown;
  constructor(private readonly onClose: () => void, private readonly latestOnly = false, private readonly max = 10_000) {}
  push(v: T): void {
    if (this.done) return;
    const w = this.waiting.shift();
    if (w) return w.resolve({ value: v, done: false });
    if (this.latestOnly) this.queue = [v];
    else if (this.queue.length >= this.max) this.fail(new GraphQLError('subscriber too slow: buffer full', { extensions: { code: 'slow-consumer' } }));
    else this.queue.push(v);
  }
  fail(e: unknown): void {
    if (this.done) return;
    this.error = e;
    const ws = this.waiting.splice(0);
    if (ws.length) {
      this.finish();
      for (const w of ws) w.reject(e);
    }
  }
  private finish() {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    try {
      this.onClose();
    } catch {
      /* ignore */
    }
  }
  get closed(): boolean {
    return this.done;
  }
  next(): Promise<IteratorResult<T>> {
    if (this.queue.length) return Promise.resolve({ value: this.queue.shift()!, done: false });
    if (this.error !== undefined && !this.done) {
      const e = this.error;
      this.finish();
      return Promise.reject(e);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
  return(): Promise<IteratorResult<T>> {
    this.finish();
    for (const w of this.waiting.splice(0)) w.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }
  throw(e: unknown): Promise<IteratorResult<T>> {
    this.finish();
    return Promise.reject(e);
  }
  [Symbol.asyncIterator]() {
    return this;
  }
}

// ── JetStream reading ──────────────────────────────────────────────────────────────

export interface StreamSource {
  nc: NatsConnection;
  stream: string;
  prefix: string;
  database: string;
  logger: Logger;
}

/** Every op of one table: its subject (src/events/subject.ts) with the op token as `>`. */
function tableFilterSubject(src: Pick<StreamSource, 'prefix' | 'database'>, schema: string, table: string): string {
  const subject = tableSubject(src.prefix, src.database, schema, table, 'insert');
  return subject.slice(0, subject.lastIndexOf('.')) + '.>';
}

const managers = new WeakMap<NatsConnection, Promise<JetStreamManager>>();

/** One JetStream manager per connection: making one costs a round trip (an account info request). */
function manager(nc: NatsConnection): Promise<JetStreamManager> {
  let m = managers.get(nc);
  if (!m) {
    const made = jetstreamManager(nc);
    managers.set(nc, (m = made));
    made.catch(() => {
      if (managers.get(nc) === made) managers.delete(nc);
    });
  }
  return m;
}

export async function lastStreamSeq(src: StreamSource): Promise<number> {
  const jsm = await manager(src.nc);
  try {
    const info = await jsm.streams.info(src.stream);
    return info.state.last_seq;
  } catch (e) {
    if (String((e as Error).message).includes('not found')) return 0;
    throw e;
  }
}

export interface Tail {
  stop(): void;
}

/** Reopen attempts in a row, without a message in between, before subscribers get an error. */
const MAX_REOPENS = 6;

/** Pull expiry of the subscription feeds; their idle heartbeat is half of it. */
const FEED_PULL_EXPIRES_MS = 5000;

/** Longest stretch a feed handles buffered events before the event loop gets a turn. */
const FEED_SLICE_MS = 20;

/**
 * Reads one table's events with an ordered consumer, from `startSeq` (a stream sequence)
 * or from new messages only. The feed never ends in silence: when the consumer's message
 * stream ends or fails without `stop()` (the consumer deleted on the server, lost with a
 * restart, heartbeats missed under load), it is reopened from the sequence after the last
 * event delivered; only when reopening keeps failing does `onError` hear of it.
 */
export async function tailTable(src: StreamSource, schema: string, table: string, startSeq: number | null, onEvent: (e: DecodedEvent) => void, onError: (e: unknown) => void): Promise<Tail> {
  const js = jetstream(src.nc);
  const filter = tableFilterSubject(src, schema, table);
  let stopped = false;
  // "New messages only" is pinned to the stream's last sequence now, so a reopen resumes
  // exactly where the first consumer would have been.
  let lastSeq = startSeq != null ? Math.max(1, startSeq) - 1 : await lastStreamSeq(src);
  let current: { msgs: ConsumerMessages; consumer: { delete?: () => Promise<unknown> } } | undefined;
  const open = async (): Promise<ConsumerMessages> => {
    const consumer = await js.consumers.get(src.stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 });
    // A short pull expiry (nats.js's default is 30 s) also shortens the idle heartbeat to half
    // of it: a lost pull request or a silent consumer shows within seconds, not after 45 s.
    const msgs = await consumer.consume({ max_messages: 256, expires: FEED_PULL_EXPIRES_MS });
    current = { msgs, consumer };
    // A deleted or vanished consumer does not end the message iterator by itself: end it, so
    // that the loop below reopens the feed.
    void (async () => {
      for await (const st of msgs.status()) {
        const gone = st.type === 'consumer_deleted' || st.type === 'consumer_not_found' || st.type === 'stream_not_found';
        const silent = st.type === 'heartbeats_missed' && (st as { count?: number }).count !== undefined && (st as { count: number }).count >= 3;
        if ((gone || silent) && !stopped) {
          msgs.stop();
          break;
        }
      }
    })().catch(() => {});
    return msgs;
  };
  let msgs = await open();
  // A backlog (subscribers slower than the events) must not hold the event loop: frames are
  // written, heartbeats read and timers run between slices.
  const slice = timeSlicer(FEED_SLICE_MS);
  (async () => {
    let reopens = 0;
    let lastError: unknown;
    for (;;) {
      try {
        for await (const m of msgs) {
          if (stopped) return;
          lastSeq = m.seq;
          reopens = 0;
          const e = decodeEvent(m);
          if (e) onEvent(e);
          await slice.maybeYield();
        }
      } catch (e) {
        lastError = e;
      }
      if (stopped) return;
      if (++reopens > MAX_REOPENS) {
        onError(lastError ?? new Error(`the event feed of ${schema}.${table} ended and could not be reopened`));
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** reopens, 5000)));
      if (stopped) return;
      try {
        current?.consumer.delete?.().catch(() => {});
        msgs = await open();
      } catch (e) {
        lastError = e;
        // Counted as one more failed reopen on the next turn of the loop.
        msgs = (async function* () {})() as unknown as ConsumerMessages;
      }
    }
  })();
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      current?.msgs.stop();
      current?.consumer.delete?.().catch(() => {});
    },
  };
}

/** One shared live tail per table: events are decoded once and fanned out. */
export class EventHub {
  private tails = new Map<string, { listeners: Set<(e: DecodedEvent) => void>; ready: Promise<Tail | null>; errs: Set<(e: unknown) => void> }>();
  constructor(private readonly src: StreamSource) {}

  /** Resolves once the shared consumer is delivering; returns the unsubscribe function. */
  async subscribe(schema: string, table: string, fn: (e: DecodedEvent) => void, onError: (e: unknown) => void): Promise<() => void> {
    const key = `${schema}.${table}`;
    let t = this.tails.get(key);
    if (!t) {
      const entry = { listeners: new Set<(e: DecodedEvent) => void>(), errs: new Set<(e: unknown) => void>(), ready: null as unknown as Promise<Tail | null> };
      entry.ready = tailTable(this.src, schema, table, null,
        (e) => { for (const l of [...entry.listeners]) l(e); },
        (e) => { this.tails.delete(key); for (const l of [...entry.errs]) l(e); },
      ).catch((e) => {
        this.tails.delete(key);
        throw e;
      });
      this.tails.set(key, entry);
      t = entry;
    }
    t.listeners.add(fn);
    t.errs.add(onError);
    const entry = t;
    try {
      await entry.ready;
    } catch (e) {
      entry.listeners.delete(fn);
      entry.errs.delete(onError);
      throw e;
    }
    return () => {
      entry.listeners.delete(fn);
      entry.errs.delete(onError);
      if (entry.listeners.size === 0 && this.tails.get(key) === entry) {
        this.tails.delete(key);
        entry.ready.then((tail) => tail?.stop(), () => {});
      }
    };
  }

  get size(): number {
    return this.tails.size;
  }

  close(): void {
    for (const t of this.tails.values()) t.ready.then((tail) => tail?.stop(), () => {});
    this.tails.clear();
  }
}

// ── filters evaluated on event rows ────────────────────────────────────────────────

/** true / false, or 'sql' when the expression needs the database (relationships). */
export type EvalResult = boolean | 'sql';

export function needsSql(tm: TableModel, exp: BoolExp | null | undefined, mode: 'graphql' | 'permission'): boolean {
  if (!exp) return false;
  for (const [k, v] of Object.entries(exp)) {
    if (k === '_and' || k === '_or') {
      if ((Array.isArray(v) ? v : [v]).some((x) => needsSql(tm, x as BoolExp, mode))) return true;
    } else if (k === '_not') {
      if (needsSql(tm, v as BoolExp, mode)) return true;
    } else if (!lookupColumn(tm, k, mode)) return true;
  }
  return false;
}

/** Evaluates a bool_exp (no relationships) on a row keyed by Postgres column names. Missing values fail. */
export function evalBoolExp(tm: TableModel, row: Record<string, unknown>, exp: BoolExp | null | undefined, mode: 'graphql' | 'permission'): boolean {
  if (!exp) return true;
  for (const [k, v] of Object.entries(exp)) {
    if (v === undefined) continue;
    if (k === '_and') {
      if (!(Array.isArray(v) ? v : [v]).every((x) => evalBoolExp(tm, row, x as BoolExp, mode))) return false;
    } else if (k === '_or') {
      if (!(Array.isArray(v) ? v : [v]).some((x) => evalBoolExp(tm, row, x as BoolExp, mode))) return false;
    } else if (k === '_not') {
      if (evalBoolExp(tm, row, v as BoolExp, mode)) return false;
    } else {
      const col = lookupColumn(tm, k, mode);
      if (!col) return false; // relationships are evaluated in SQL by the caller
      if (!(col.name in row)) return false;
      if (!compare(col, row[col.name], v as Record<string, unknown>)) return false;
    }
  }
  return true;
}

function compare(col: ColumnModel, value: unknown, exp: Record<string, unknown>): boolean {
  for (const [op, arg] of Object.entries(exp ?? {})) {
    if (arg === undefined) continue;
    switch (op) {
      case '_is_null':
        if (arg === null) break;
        if ((value === null) !== arg) return false;
        break;
      case '_eq':
        if (arg === null ? value !== null : value === null || cmp(col, value, arg) !== 0) return false;
        break;
      case '_neq':
        if (arg === null ? value === null : value !== null && cmp(col, value, arg) === 0) return false;
        break;
      case '_gt': case '_gte': case '_lt': case '_lte': {
        if (value === null || arg === null) return false;
        const c = cmp(col, value, arg);
        if (Number.isNaN(c)) return false;
        if (op === '_gt' && !(c > 0)) return false;
        if (op === '_gte' && !(c >= 0)) return false;
        if (op === '_lt' && !(c < 0)) return false;
        if (op === '_lte' && !(c <= 0)) return false;
        break;
      }
      case '_in':
      case '_nin': {
        const hit = value !== null && (arg as unknown[]).some((x) => x !== null && cmp(col, value, x) === 0);
        if (op === '_in' ? !hit : value === null || hit) return false;
        break;
      }
      case '_like': case '_ilike': case '_nlike': case '_nilike': {
        if (value === null || typeof arg !== 'string') return false;
        const re = likeRegex(arg, op.includes('ilike'));
        const m = re.test(String(value));
        if (op.startsWith('_n') ? m : !m) return false;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

function likeRegex(p: string, ci: boolean): RegExp {
  let s = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '\\' && i + 1 < p.length) s += p[++i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '%') s += '[\\s\\S]*';
    else if (c === '_') s += '[\\s\\S]';
    else s += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${s}$`, ci ? 'i' : '');
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
  if (v && typeof v === 'object') return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical((v as Record<string, unknown>)[k])).join(',') + '}';
  return JSON.stringify(v);
}

/** Compares an event value with a filter value of the same column: <0, 0, >0, or NaN when not comparable. */
export function cmp(col: ColumnModel, a: unknown, b: unknown): number {
  if (col.isArray || col.scalar === 'json' || col.scalar === 'jsonb') return canonical(a) === canonical(b) ? 0 : NaN;
  switch (col.scalar) {
    case 'Int':
    case 'float8': {
      const x = Number(a);
      const y = Number(b);
      return x === y ? 0 : x < y ? -1 : x > y ? 1 : NaN;
    }
    case 'bigint':
    case 'numeric':
      return cmpDecimal(String(a), String(b));
    case 'Boolean':
      return a === b ? 0 : NaN;
    case 'uuid':
      return cmpStr(String(a).toLowerCase().replace(/[{}-]/g, ''), String(b).toLowerCase().replace(/[{}-]/g, ''));
    case 'timestamptz':
    case 'timestamp': {
      const x = micros(String(a), col.scalar === 'timestamptz');
      const y = micros(String(b), col.scalar === 'timestamptz');
      return x === y ? 0 : x < y ? -1 : 1;
    }
    default:
      return cmpStr(String(a), String(b));
  }
}

const cmpStr = (a: string, b: string) => (a === b ? 0 : a < b ? -1 : 1);

function micros(s: string, tz: boolean): bigint {
  if (s === 'infinity') return 1n << 62n;
  if (s === '-infinity') return -(1n << 62n);
  const m = /^(\d{4,}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2})?)?$/.exec(s.trim());
  if (!m) return BigInt(Date.parse(s)) * 1000n;
  let zone = m[4] ?? 'Z';
  if (!tz) zone = 'Z';
  if (/^[+-]\d{2}$/.test(zone)) zone += ':00';
  const ms = Date.parse(`${m[1]}T${m[2]}${zone}`);
  return BigInt(ms) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0') || '0');
}

export function cmpDecimal(a: string, b: string): number {
  const p = (s: string) => {
    s = s.trim();
    if (/nan/i.test(s)) return null;
    const neg = s.startsWith('-');
    s = s.replace(/^[+-]/, '');
    let [i, f = ''] = s.toLowerCase().split('e')[0].split('.');
    const e = Number(s.toLowerCase().split('e')[1] ?? 0);
    i = i || '0';
    // Scale to a common exponent by moving digits.
    const digits = i + f;
    const exp = e - f.length;
    return { neg, digits: BigInt(digits || '0'), exp };
  };
  const x = p(a);
  const y = p(b);
  if (!x || !y) return a.trim().toLowerCase() === b.trim().toLowerCase() ? 0 : NaN;
  const e = Math.min(x.exp, y.exp);
  const vx = (x.neg ? -1n : 1n) * x.digits * 10n ** BigInt(x.exp - e);
  const vy = (y.neg ? -1n : 1n) * y.digits * 10n ** BigInt(y.exp - e);
  return vx === vy ? 0 : vx < vy ? -1 : 1;
}
