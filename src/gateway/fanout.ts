/**
 * Shared subscription executions for graphql-ws: subscribers with the same key (schema
 * version, role, session, document, operation and variables) share one graphql-js
 * execution per event and one serialized payload, spliced into each subscriber's own
 * `{"id":…,"type":"next","payload":…}` frame and written to its socket directly.
 *
 * Only change-event subscriptions that start now are shared (no `from:`: a cursor replays
 * history a later subscriber would not see; live queries send their current result first).
 */
import { GraphQLError, Kind, type DocumentNode, type ExecutionResult, type GraphQLSchema, type OperationDefinitionNode } from 'graphql/index.js';
import type { WebSocket } from 'ws';

export interface ShareTicket {
  key: string;
  id: string;
  socket: WebSocket;
}

/** Above this many bytes queued on a socket, a shared subscriber is dropped as too slow. */
const MAX_BUFFERED = 32 * 2 ** 20;

/**
 * Whether an operation can be shared: a subscription whose root fields are `<table>_events`
 * fields (not live queries, which are in `liveRoots`) without a `from:` argument.
 */
export function shareable(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, liveRoots: { has(name: string): boolean }): boolean {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined;
  if (!op || op.operation !== 'subscription') return false;
  const fields = schema.getSubscriptionType()?.getFields();
  if (!fields || op.selectionSet.selections.length === 0) return false;
  for (const s of op.selectionSet.selections) {
    if (s.kind !== Kind.FIELD) return false;
    const name = s.name.value;
    if (!name.endsWith('_events') || liveRoots.has(name) || !fields[name]) return false;
    if (s.arguments?.some((a) => a.name.value === 'from')) return false;
    if (s.directives?.length) return false;
  }
  return true;
}

type Stringified = ExecutionResult & { stringify: (v: unknown) => string };

/**
 * Whether a result must be serialized by its own `stringify` (stringifyLossless: it holds
 * JsonNumbers, set by the gateway's useLosslessNumbers plugin). Results without it take
 * JSON.stringify, as graphql-ws would.
 */
function hasOwnStringify(r: unknown): r is Stringified {
  return !!r && typeof r === 'object' && Object.prototype.hasOwnProperty.call(r, 'stringify');
}

/** `{"id":…,"type":"next","payload":<result>}` written to the socket, the result by its own `stringify`. */
function sendExact(socket: WebSocket, id: string, r: Stringified): void {
  if (socket.readyState !== 1) return;
  const { errors, ...rest } = r;
  socket.send(`{"id":${JSON.stringify(id)},"type":"next","payload":${r.stringify(errors ? { ...rest, errors: errors.map((e) => e.toJSON()) } : rest)}}`);
}

/**
 * graphql-ws writes `next` messages with JSON.stringify, which turns JsonNumbers into the
 * nearest double: results that carry their own `stringify` are written to the socket here
 * instead (in order: the next result is pulled only after graphql-ws sent the previous one),
 * the others are left to graphql-ws. A single result (query, mutation) written here becomes
 * an iterator that ends at once (graphql-ws then sends `complete`).
 */
export function exactFrames(result: unknown, id: string, socket: WebSocket): unknown {
  if (hasOwnStringify(result)) {
    sendExact(socket, id, result);
    return { [Symbol.asyncIterator]() { return { next: () => Promise.resolve({ value: undefined, done: true }) }; } };
  }
  if (!result || typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') return result;
  const it = (result as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator]();
  const wrapped: AsyncIterableIterator<ExecutionResult> = {
    async next() {
      for (;;) {
        const r = await it.next();
        if (r.done || !hasOwnStringify(r.value)) return r;
        sendExact(socket, id, r.value);
      }
    },
    return: (v?: unknown) => it.return?.(v as never) ?? Promise.resolve({ value: undefined, done: true }),
    throw: (e?: unknown) => it.throw?.(e) ?? Promise.reject(e),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return wrapped;
}

interface WsInternals {
  _socket?: { write(b: Buffer): boolean; writable?: boolean };
  _sender?: { _state?: number; _queue?: unknown[]; _firstFragment?: boolean; _extensions?: Record<string, unknown> };
}

/**
 * Writes a text message `prefix + tail` to a ws socket as one WebSocket frame built here,
 * straight to its TCP socket: what `ws.send` writes (FIN, opcode 1, the length, no mask: a
 * server's frame; no extension is negotiated), without encoding the text again for every
 * subscriber and as one chunk instead of two (one write(2) per socket per burst, not a
 * writev). Only when ws's sender is idle (nothing of its own queued, no message in fragments,
 * no permessage-deflate): the frame then lands in the TCP socket's stream in the order ws's
 * own writes do. false: nothing written, the caller uses `ws.send`.
 */
export function writeFrame(ws: WebSocket, prefix: Buffer, tail: Buffer): boolean {
  const { _socket: raw, _sender: sender } = ws as unknown as WsInternals;
  if (!raw || raw.writable === false || !sender || sender._state !== 0 || sender._queue?.length !== 0 || sender._firstFragment !== true) return false;
  if (!sender._extensions || Object.keys(sender._extensions).length) return false;
  const n = prefix.length + tail.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + n);
  frame[0] = 0x81;
  if (head === 2) frame[1] = n;
  else if (head === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  prefix.copy(frame, head);
  tail.copy(frame, head + prefix.length);
  raw.write(frame);
  return true;
}

interface Member {
  frame: string; // '{"id":<id>,"type":"next","payload":'
  /** `frame` as UTF-8 bytes, for frames built once per event (see writeFrame). */
  frameBytes: Buffer;
  socket: WebSocket;
  done: boolean;
  wake?: { resolve: (r: IteratorResult<never>) => void; reject: (e: unknown) => void };
  end?: { error?: unknown };
  iterator: AsyncIterableIterator<never>;
  /** Leaves the group (once); the last member to leave stops the execution. */
  leave: () => void;
}

interface Group {
  key: string;
  members: Set<Member>;
  ready: Promise<ExecutionResult | null>;
  iter?: AsyncIterator<ExecutionResult>;
  ended: boolean;
  pumping?: boolean;
}

export class Fanout {
  private groups = new Map<string, Group>();
  /** Payloads serialized (one per shared execution result). */
  executions = 0;

  constructor(private readonly onMembers: () => void = () => {}) {}

  /** Subscribers beyond the first of each running group (the engine counts each group once). */
  get extraSubscribers(): number {
    let n = 0;
    for (const g of this.groups.values()) if (g.iter && !g.ended) n += Math.max(0, g.members.size - 1);
    return n;
  }

  /** Current subscribers of the group a key names (for delivery counts). */
  audience(key: string): number {
    return this.groups.get(key)?.members.size ?? 0;
  }

  /**
   * Joins the group of `t.key`, starting its execution with `start` when there is none.
   * Returns what graphql-ws should iterate for this subscriber: an iterator that yields
   * nothing (frames are written to the socket directly) and ends when the group ends.
   */
  async join(t: ShareTicket, start: () => Promise<unknown> | unknown): Promise<AsyncIterableIterator<never> | ExecutionResult> {
    let g = this.groups.get(t.key);
    if (!g || g.ended) {
      const group: Group = { key: t.key, members: new Set(), ended: false, ready: null as unknown as Promise<ExecutionResult | null> };
      group.ready = (async () => {
        let r: unknown;
        try {
          r = await start();
        } catch (e) {
          this.drop(group);
          throw e;
        }
        if (r && typeof (r as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
          group.iter = (r as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator]();
          return null;
        }
        this.drop(group);
        return r as ExecutionResult;
      })();
      this.groups.set(t.key, group);
      g = group;
    }
    const group = g;
    const m = this.member(group, t);
    group.members.add(m);
    let single: ExecutionResult | null;
    try {
      single = await group.ready;
    } catch (e) {
      group.members.delete(m);
      throw e;
    }
    if (single) {
      group.members.delete(m);
      return single;
    }
    if (group.ended && !m.done) {
      // The group ended between its start and this subscriber's turn: start again.
      group.members.delete(m);
      return this.join(t, start);
    }
    if (!group.ended) {
      if (group.members.size === 0) {
        // Everyone left before the execution started.
        this.drop(group);
        void group.iter?.return?.();
      } else if (!group.pumping) {
        group.pumping = true;
        void this.pump(group);
      }
    }
    this.onMembers();
    return m.iterator;
  }

  private member(group: Group, t: ShareTicket): Member {
    const frame = `{"id":${JSON.stringify(t.id)},"type":"next","payload":`;
    const m: Member = {
      frame,
      frameBytes: Buffer.from(frame),
      socket: t.socket,
      done: false,
      iterator: null as unknown as AsyncIterableIterator<never>,
      leave: () => {},
    };
    const leave = () => {
      if (m.done) return;
      m.done = true;
      group.members.delete(m);
      if (group.members.size === 0 && group.iter && !group.ended) {
        this.drop(group);
        void group.iter.return?.();
      }
      this.onMembers();
    };
    m.iterator = {
      next: () => {
        if (m.end) {
          const e = m.end;
          m.end = { }; // report the end once
          if (e.error !== undefined) return Promise.reject(e.error);
          return Promise.resolve({ value: undefined as never, done: true });
        }
        if (m.done) return Promise.resolve({ value: undefined as never, done: true });
        return new Promise((resolve, reject) => (m.wake = { resolve, reject }));
      },
      return: () => {
        leave();
        const w = m.wake;
        m.wake = undefined;
        w?.resolve({ value: undefined as never, done: true });
        return Promise.resolve({ value: undefined as never, done: true });
      },
      throw: (e: unknown) => {
        leave();
        return Promise.reject(e);
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    m.leave = leave;
    return m;
  }

  private drop(group: Group): void {
    group.ended = true;
    if (this.groups.get(group.key) === group) this.groups.delete(group.key);
  }

  private async pump(group: Group): Promise<void> {
    const iter = group.iter!;
    let error: unknown;
    try {
      for (;;) {
        const r = await iter.next();
        if (r.done || group.ended) break;
        this.broadcast(group, r.value);
      }
    } catch (e) {
      error = e;
    }
    this.drop(group);
    for (const m of [...group.members]) this.finish(m, error);
    this.onMembers();
  }

  private broadcast(group: Group, result: ExecutionResult): void {
    this.executions++;
    const { errors, ...rest } = result;
    const value = errors ? { ...rest, errors: errors.map((e) => e.toJSON()) } : rest;
    // one serialization for every subscriber; exact jsonb numbers (JsonNumber) when the result has them
    const json = hasOwnStringify(result) ? result.stringify(value) : JSON.stringify(value);
    const tail = Buffer.from(json + '}'); // encoded once; each member's frame is its prefix + this
    for (const m of group.members) {
      if (m.done) continue;
      const s = m.socket;
      if (s.readyState !== 1) continue;
      if (s.bufferedAmount > MAX_BUFFERED) {
        this.finish(m, new GraphQLError('subscriber too slow: buffer full', { extensions: { code: 'slow-consumer' } }));
        continue;
      }
      this.cork(s);
      if (!writeFrame(s, m.frameBytes, tail)) s.send(m.frame + json + '}');
    }
  }

  /**
   * Events come in bursts (JetStream batches): a socket's frames of one burst are written
   * together (one write per socket per turn of the event loop instead of one per event).
   */
  private corked = new Set<{ cork(): void; uncork(): void }>();
  private cork(s: WebSocket): void {
    const raw = (s as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    if (!raw || this.corked.has(raw)) return;
    if (this.corked.size === 0) setImmediate(() => this.uncorkAll());
    raw.cork();
    this.corked.add(raw);
  }
  private uncorkAll(): void {
    const all = [...this.corked];
    this.corked.clear();
    for (const raw of all) raw.uncork();
  }

  /** Ends one subscriber's iterator: done, or with an error graphql-ws reports to it. */
  private finish(m: Member, error?: unknown): void {
    if (m.done) return;
    m.leave();
    const w = m.wake;
    m.wake = undefined;
    if (w) {
      if (error !== undefined) w.reject(error);
      else w.resolve({ value: undefined as never, done: true });
    } else m.end = { error };
  }

  close(): void {
    for (const g of [...this.groups.values()]) {
      this.drop(g);
      void g.iter?.return?.();
    }
  }
}
