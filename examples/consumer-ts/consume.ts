/**
 * Consuming walnats change events from TypeScript, with a durable JetStream consumer.
 *
 *   NATS_URL=nats://127.0.0.1:4222 npx tsx examples/consumer-ts/consume.ts shop public.orders insert,update
 *
 * prints one line per change event of table public.orders in database shop, and remembers
 * its position in NATS: stop it, write to the table, start it again, and it continues where
 * it stopped. See docs/consumers.md for the subjects and the envelope.
 *
 * What it shows:
 * - a durable pull consumer (`durable_name`), created if missing, explicit acks;
 * - a filter by table and op in the subject, with the names escaped as walnats escapes them
 *   (nats-server 2.9 takes one filter subject: several ops use `*` as the op token, and the
 *   events of other ops are acknowledged and skipped here; 2.10+ could use filter_subjects);
 * - deduplication by `Nats-Msg-Id`: a message can be delivered again when its ack was lost
 *   (a crash after handling, before acking), and `Nats-Msg-Id` is the same on every delivery
 *   and every replay by walnats. Here the seen ids live in memory; a real sink stores the
 *   last one in the same transaction as its write (see `seen` below).
 *
 * Only @nats-io/transport-node and @nats-io/jetstream are needed; the file imports nothing
 * from walnats, so it can be copied into any project.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';

/** The event body (docs/consumers.md, "Envelope"). */
export interface ChangeEvent {
  op: 'c' | 'u' | 'd' | 't' | 'r' | 'm';
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  source: {
    connector: 'walnats';
    db: string;
    schema: string | null;
    table: string | null;
    lsn: string;
    commit_lsn: string;
    seq: number;
    txid: number | null;
    ts_ms: number;
    snapshot: boolean;
  };
  ts_ms: number;
  unchanged?: string[];
  truncate?: { cascade: boolean; restart_identity: boolean };
}

export type TableOp = 'insert' | 'update' | 'delete' | 'truncate' | 'read';

export interface Delivery {
  subject: string;
  msgId: string;
  /** Stream sequence: the event's position in the stream. */
  streamSeq: number;
  /** True when JetStream delivers this message again (its earlier ack did not arrive). */
  redelivered: boolean;
}

/** walnats's escaping of a name into one subject token: [A-Za-z0-9_-] kept, other bytes %XX. */
export function escapeToken(name: string): string {
  if (name === '') return '%';
  let out = '';
  for (const byte of new TextEncoder().encode(name)) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(ch) ? ch : '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** The default stream name of a database: `<prefix>_<db>` with non-alphanumerics as -XX. */
export function defaultStreamName(prefix: string, db: string): string {
  const part = (s: string) =>
    [...new TextEncoder().encode(s)].map((b) => (/[A-Za-z0-9]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : '-' + b.toString(16).toUpperCase().padStart(2, '0'))).join('');
  return `${part(prefix)}_${part(db)}`; // names over 200 characters are cut and hashed: see docs
}

/** The filter subject for one table and a set of ops (one op → exact, several → `*`). */
export function tableSubject(prefix: string, db: string, schema: string, table: string, ops: readonly TableOp[]): string {
  const op = ops.length === 1 ? ops[0] : '*';
  return [prefix, escapeToken(db), escapeToken(schema), escapeToken(table), op].join('.');
}

export interface ConsumeOptions {
  nc: NatsConnection;
  /** Source database name (the second subject token). */
  db: string;
  schema: string;
  table: string;
  /** Which ops to receive; default all. */
  ops?: readonly TableOp[];
  prefix?: string;
  /** Default: walnats's default stream name for prefix and db. */
  stream?: string;
  /** Durable consumer name: the position is kept under this name in NATS. */
  durable: string;
  /** Handles one event; the message is acknowledged after it returns. Throw to have it redelivered. */
  handle: (event: ChangeEvent, delivery: Delivery) => void | Promise<void>;
  /**
   * Ids already handled. The default remembers the last 100,000 in memory, which covers
   * redeliveries within one run; a sink that must survive restarts keeps the last handled id
   * (or stream sequence) next to the data it writes, in the same transaction.
   */
  seen?: { has(id: string): boolean; add(id: string): void };
  /** How long a failed event waits before it is delivered again; default 5 s. */
  retryDelayMs?: number;
}

export interface Consumption {
  /** Stops after the message in hand; the consumer (and its position) stays in NATS. */
  stop(): Promise<void>;
  readonly done: Promise<void>;
  /** Messages skipped because their Nats-Msg-Id was already handled. */
  readonly duplicates: number;
}

/** A bounded set: the oldest ids are forgotten first. */
export function boundedSet(limit = 100_000): { has(id: string): boolean; add(id: string): void } {
  const ids = new Set<string>();
  return {
    has: (id) => ids.has(id),
    add(id) {
      ids.add(id);
      if (ids.size > limit) ids.delete(ids.values().next().value!);
    },
  };
}

export async function consume(opts: ConsumeOptions): Promise<Consumption> {
  const prefix = opts.prefix ?? 'walnats';
  const ops = opts.ops ?? ['insert', 'update', 'delete', 'truncate', 'read'];
  const stream = opts.stream ?? defaultStreamName(prefix, opts.db);
  const filter = tableSubject(prefix, opts.db, opts.schema, opts.table, ops);
  const seen = opts.seen ?? boundedSet();

  // Create the durable consumer, or keep the existing one (and its position).
  const jsm = await jetstreamManager(opts.nc);
  const config = {
    durable_name: opts.durable,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: 30_000_000_000, // ns: redeliver what was not acked within 30 s
    max_ack_pending: 1000,
  };
  try {
    const info = await jsm.consumers.info(stream, opts.durable);
    if (info.config.filter_subject !== filter) await jsm.consumers.update(stream, opts.durable, { filter_subject: filter });
  } catch (err) {
    if (!/consumer not found/i.test(String((err as Error).message))) throw err;
    await jsm.consumers.add(stream, config);
  }

  const consumer = await jetstream(opts.nc).consumers.get(stream, opts.durable);
  const messages = await consumer.consume({ max_messages: 256 });
  const state = { duplicates: 0 };
  const wanted = new Set<string>(ops);

  const handleOne = async (m: JsMsg) => {
    const msgId = m.headers?.get('Nats-Msg-Id') ?? '';
    const op = m.subject.slice(m.subject.lastIndexOf('.') + 1);
    if (!wanted.has(op)) return m.ack(); // another op of this table (the `*` filter)
    if (msgId && seen.has(msgId)) {
      state.duplicates++;
      return m.ack();
    }
    const event = m.json<ChangeEvent>();
    await opts.handle(event, { subject: m.subject, msgId, streamSeq: m.seq, redelivered: m.redelivered });
    if (msgId) seen.add(msgId);
    // ackAck waits for the server to confirm the ack, so a handled message is not redelivered
    // after a clean stop.
    await m.ackAck();
  };

  const done = (async () => {
    for await (const m of messages) {
      try {
        await handleOne(m);
      } catch (err) {
        console.error(`event ${m.seq} on ${m.subject} failed, will be redelivered:`, err);
        m.nak(opts.retryDelayMs ?? 5000);
      }
    }
  })();

  return {
    async stop() {
      await messages.close();
      await done;
    },
    done,
    get duplicates() {
      return state.duplicates;
    },
  };
}

// Command line: consume.ts <db> <schema.table> [ops] — env NATS_URL, WALNATS_PREFIX, DURABLE.
async function main(argv: string[]): Promise<void> {
  const [db, qualified, opsArg] = argv;
  if (!db || !qualified?.includes('.')) {
    console.error('usage: consume.ts <database> <schema.table> [insert,update,delete,truncate,read]');
    process.exit(2);
  }
  const dot = qualified.indexOf('.');
  const nc = await connect({ servers: (process.env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',') });
  const c = await consume({
    nc,
    db,
    schema: qualified.slice(0, dot),
    table: qualified.slice(dot + 1),
    ops: opsArg ? (opsArg.split(',') as TableOp[]) : undefined,
    prefix: process.env.WALNATS_PREFIX ?? 'walnats',
    durable: process.env.DURABLE ?? `example-${db}-${qualified}`.replace(/[^A-Za-z0-9_-]/g, '_'),
    handle(event, d) {
      console.log(JSON.stringify({ seq: d.streamSeq, id: d.msgId, op: event.op, before: event.before, after: event.after }));
    },
  });
  const shutdown = () => void c.stop().then(() => nc.drain());
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  await c.done;
}

if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
