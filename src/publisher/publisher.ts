/**
 * Pipelined JetStream publishing over the core connection.
 *
 * Each event is published with `nc.publish(subject, body, { reply, headers })`, the reply
 * subject being `<inbox>.<index>` under one wildcard subscription `<inbox>.*`; JetStream's
 * ack comes back there. Up to `window` events may be outstanding; acks are matched to
 * events by index and counted in order (`ackedCount` = length of the acked prefix).
 *
 * No gap, ever: with `expectedLastSeq` (the stream's last sequence when publishing starts),
 * the event with index i carries `Nats-Expected-Last-Sequence: expectedLastSeq + i`, so
 * JetStream refuses to store it unless every earlier event of this publisher was stored
 * right before it. If one event is lost (a leader change mid-window, a dropped connection),
 * every later one is refused and the publisher fails; the daemon then reads the stream back
 * and resumes from what it holds. Each message also carries `Nats-Expected-Stream`.
 *
 * Sparse acks: that chain also means that an ack for event i (stored at
 * `expectedLastSeq + i + 1`) proves every earlier event of this publisher stored. So, with
 * `expectedLastSeq`, only every `ackEvery`-th event, the first event, the event that fills
 * the window, and the last event of each synchronous burst of `send` calls ask for an ack
 * (carry a reply subject); the others are published without one. An event refused in silence
 * is still caught: every later event is refused too, and the next one that asks gets the
 * error, which names the first event missing. The first event asks so that a publisher
 * resuming after such a failure gets JetStream's own reason for it. This saves what
 * nats-server spends building, routing and writing each ack and what this process spends
 * parsing and matching it (about a third of the publishing CPU on both sides). To know which
 * event ends a burst, the newest event is held back until the next `send` or the end of the
 * current microtask turn. Without `expectedLastSeq` every event asks and is written at once.
 *
 * Failure (the `failed` promise resolves with the first one; the publisher then accepts
 * nothing more): a JetStream error in an ack (wrong last sequence, …), no responders (503:
 * no stream for the subject), a duplicate ack (the event was already stored: the caller's
 * resume position was wrong), an ack with an unexpected sequence, no ack progress for
 * `ackTimeoutMs` while events are outstanding, a disconnect while events are outstanding
 * (their acks may be lost), the connection closing, or a checkpoint callback throwing.
 */
import { createInbox, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Buffer } from 'node:buffer';
import type { OutboundEvent } from '../events/envelope.ts';

export interface PublisherOptions {
  /** Name of the stream that must store the events (sent as `Nats-Expected-Stream`). */
  stream: string;
  /** Maximum outstanding (unacknowledged) events before `send` returns false. Default 4096. */
  window?: number;
  /** Fail when events are outstanding and no ack arrived for this long. Default 10 s. */
  ackTimeoutMs?: number;
  /** The stream's last sequence now; enables `Nats-Expected-Last-Sequence` on every event (and sparse acks). */
  expectedLastSeq?: number;
  /**
   * With `expectedLastSeq`: ask for an ack at least every this many events. Default
   * min(128, window / 8), at least 1; 1 asks for every ack.
   */
  ackEvery?: number;
}

export interface Publisher {
  /**
   * Publishes one event. The event is always taken (unless the publisher has failed or is
   * closed, which throws); the result tells whether there is room for more: false when the
   * window is full, and the caller should await `whenRoom()` before sending again.
   */
  send(ev: OutboundEvent): boolean;
  /** Resolves when there is room in the window again; rejects when the publisher fails or closes. */
  whenRoom(): Promise<void>;
  /**
   * Calls `fn` once every event sent before this call is acknowledged, in call order;
   * synchronously when nothing is outstanding. Never called after a failure.
   */
  checkpoint(fn: () => void): void;
  /** Resolves once everything sent so far is acknowledged; rejects on failure. */
  flush(): Promise<void>;
  /** Events acknowledged, counting the in-order prefix only. */
  readonly ackedCount: number;
  /** Events sent. */
  readonly sentCount: number;
  /** Events sent and not yet acknowledged. */
  readonly inFlight: number;
  /** Stream sequence of the last in-order acknowledged event (or `expectedLastSeq`). */
  readonly lastStreamSeq: number | undefined;
  /** The failure, once there is one. */
  readonly error: Error | undefined;
  /** Resolves (never rejects) with the first failure. */
  readonly failed: Promise<Error>;
  /**
   * Stops: unsubscribes, abandons outstanding acks and the newest event if it is still held
   * back for the end of its burst (flush() first to have everything sent stored), rejects
   * `whenRoom`/`flush` waiters.
   */
  close(): Promise<void>;
}

export class PublishError extends Error {
  /** JetStream error code (`err_code`) or NATS status code (503), when there is one. */
  readonly code: number | undefined;
  constructor(message: string, code?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PublishError';
    this.code = code;
  }
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

const DEFAULT_WINDOW = 4096;
const DEFAULT_ACK_TIMEOUT_MS = 10_000;

const SEQ_FIELD = /"seq"\s*:\s*(\d+)/;
const DUPLICATE_FIELD = /"duplicate"\s*:\s*true/;
const utf8 = new TextDecoder();
/** Ack payloads to text; they are small and nearly always ASCII, so skip the decoder then. */
function ackText(data: Uint8Array): string {
  if (data.length > 512) return utf8.decode(data);
  for (let i = 0; i < data.length; i++) if (data[i] >= 0x80) return utf8.decode(data);
  return String.fromCharCode.apply(null, data as unknown as number[]);
}

const EXPECTED_STREAM = 'Nats-Expected-Stream';
const EXPECTED_LAST_SEQ = 'Nats-Expected-Last-Sequence';
const EXPECTED_LAST_MSG_ID = 'Nats-Expected-Last-Msg-Id';

/** Header names seen to be valid (printable ASCII but ':'); walnats uses a handful. */
const validNames = new Set<string>([EXPECTED_STREAM, EXPECTED_LAST_SEQ, EXPECTED_LAST_MSG_ID]);
function validName(k: string): boolean {
  if (validNames.has(k)) return true;
  if (k.length === 0) return false;
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    if (c === 58 || c < 33 || c > 126) return false;
  }
  if (validNames.size < 1024) validNames.add(k);
  return true;
}

/** A value that nats.js would write unchanged: no CR/LF, nothing `trim()` removes. */
function plainValue(v: string): boolean {
  const n = v.length;
  if (n === 0) return true;
  const a = v.charCodeAt(0);
  const b = v.charCodeAt(n - 1);
  if (!(a > 32 && a < 127 && b > 32 && b < 127) && v.trim() !== v) return false;
  return v.indexOf('\r') === -1 && v.indexOf('\n') === -1;
}

function checkedValue(v: string): string {
  const h = natsHeaders();
  h.set(EXPECTED_STREAM, v);
  return h.get(EXPECTED_STREAM);
}

/**
 * The header block of one event, byte for byte what nats.js's `MsgHdrs` would encode for
 * `set(k, v)` of each pair, then `Nats-Expected-Stream`, `Nats-Expected-Last-Sequence` and
 * `Nats-Expected-Last-Msg-Id` (the last two when given):
 * `NATS/1.0\r\n<k>: <v>\r\n…\r\n\r\n`. `MsgHdrs.set` validates and looks up every key one by
 * one (a measurable share of the CDC hot path); here the common case (distinct valid names,
 * plain values) is written directly, and anything else goes through `MsgHdrs` itself so that
 * its rules (trimming, errors, a repeated name replacing the earlier one) apply unchanged.
 * `nc.publish` only calls `encode()` on the headers it is given.
 */
export function headerBlock(pairs: ReadonlyArray<readonly [string, string]>, streamLine: string, lastSeq: string | undefined, lastMsgId?: string): MsgHdrs {
  let text = 'NATS/1.0';
  const n = pairs.length;
  for (let i = 0; i < n; i++) {
    const [k, v] = pairs[i];
    if (!validName(k) || !plainValue(v) || k === EXPECTED_STREAM || k === EXPECTED_LAST_SEQ || k === EXPECTED_LAST_MSG_ID) return slowHeaders(pairs, streamLine, lastSeq, lastMsgId);
    for (let j = 0; j < i; j++) if (pairs[j][0] === k) return slowHeaders(pairs, streamLine, lastSeq, lastMsgId);
    text += '\r\n' + k + ': ' + v;
  }
  text += streamLine;
  if (lastSeq !== undefined) text += '\r\n' + EXPECTED_LAST_SEQ + ': ' + lastSeq;
  if (lastMsgId !== undefined) {
    if (!plainValue(lastMsgId)) return slowHeaders(pairs, streamLine, lastSeq, lastMsgId);
    text += '\r\n' + EXPECTED_LAST_MSG_ID + ': ' + lastMsgId;
  }
  return new EncodedHeaders(text + '\r\n\r\n') as unknown as MsgHdrs;
}

class EncodedHeaders {
  constructor(private readonly text: string) {}
  encode(): Uint8Array {
    // Buffer.from: pooled for small blocks, far cheaper than TextEncoder.encode; same bytes.
    return Buffer.from(this.text, 'utf8');
  }
}

function slowHeaders(pairs: ReadonlyArray<readonly [string, string]>, streamLine: string, lastSeq: string | undefined, lastMsgId: string | undefined): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of pairs) h.set(k, v);
  h.set(EXPECTED_STREAM, streamLine.slice(streamLine.indexOf(': ') + 2));
  if (lastSeq !== undefined) h.set(EXPECTED_LAST_SEQ, lastSeq);
  if (lastMsgId !== undefined) h.set(EXPECTED_LAST_MSG_ID, lastMsgId);
  return h;
}


export function createPublisher(nc: NatsConnection, options: PublisherOptions): Publisher {
  const stream = options.stream;
  const window = options.window ?? DEFAULT_WINDOW;
  const ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  const base = options.expectedLastSeq;
  if (!Number.isInteger(window) || window < 1) throw new Error(`invalid publish window ${window}`);
  if (!(ackTimeoutMs > 0)) throw new Error(`invalid ack timeout ${ackTimeoutMs}`);
  if (base !== undefined && (!Number.isSafeInteger(base) || base < 0)) throw new Error(`invalid expectedLastSeq ${base}`);
  const ackEvery = base === undefined ? 1 : (options.ackEvery ?? Math.max(1, Math.min(128, Math.floor(window / 8))));
  if (!Number.isInteger(ackEvery) || ackEvery < 1) throw new Error(`invalid ackEvery ${ackEvery}`);
  /** Sparse acks: events are held back one at a time and most go out without a reply subject. */
  const sparse = ackEvery > 1;

  // Checked like any header value (nats.js rejects CR/LF and trims), once.
  const streamLine = `\r\n${EXPECTED_STREAM}: ${checkedValue(stream)}`;
  const inbox = createInbox();
  const inboxPrefixLen = inbox.length + 1;
  // nats-server writes acks as `{"stream":"S", "seq":N}` (+ `,"duplicate": true`, `"domain"`):
  // whitespace varies, so match tolerantly instead of byte-exact.
  // The common ack, `{"stream":"<stream>", "seq":N}` exactly, is read from its bytes; anything
  // else (other spacing, more fields, errors) goes the general way below.
  const ackPrefix = Buffer.from(`{"stream":${JSON.stringify(stream)}, "seq":`, 'utf8');
  const streamField = new RegExp(`"stream"\\s*:\\s*${JSON.stringify(stream).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);

  let sent = 0;
  let acked = 0;
  let lastStreamSeq: number | undefined = base;
  /** Acks that arrived ahead of the in-order prefix (not expected from JetStream, but handled). */
  const ahead = new Set<number>();
  const checkpoints: Array<{ upTo: number; fn: () => void }> = [];
  let cpHead = 0;
  let roomWaiters: Waiter[] = [];
  const flushWaiters = new Set<Waiter>();
  const lowWater = Math.max(0, Math.floor((window * 3) / 4) - 1);
  let lastProgress = 0;
  let error: Error | undefined;
  let closed = false;
  let resolveFailed!: (e: Error) => void;
  const failed = new Promise<Error>((r) => (resolveFailed = r));

  function fail(e: Error) {
    if (error || closed) return;
    error = e;
    teardown();
    rejectAll(e);
    resolveFailed(e);
  }

  let timer: NodeJS.Timeout | undefined;
  let statusIter: AsyncIterator<unknown> | undefined;
  let statusSource: AsyncIterable<unknown> | undefined;
  function teardown() {
    held = undefined;
    if (timer) clearInterval(timer);
    timer = undefined;
    if (!sub.isClosed()) sub.unsubscribe();
    // nats.js status iterators stay registered until stopped; a pending next() would hold
    // return() back, so stop the source itself.
    (statusSource as { stop?: () => void } | undefined)?.stop?.();
    statusSource = undefined;
    statusIter = undefined;
  }

  function onAck(index: number, seq: number) {
    if (base !== undefined) {
      onChainAck(index, seq);
      return;
    }
    if (index < acked || ahead.has(index) || index >= sent) {
      fail(new PublishError(`unexpected second ack for event ${index} (stream seq ${seq})`));
      return;
    }
    if (base !== undefined && seq !== base + index + 1) {
      fail(new PublishError(`event ${index} stored at stream seq ${seq}, expected ${base + index + 1}`));
      return;
    }
    lastProgress = performance.now();
    if (index !== acked) {
      ahead.add(index);
      return;
    }
    acked++;
    lastStreamSeq = seq;
    while (ahead.size > 0 && ahead.delete(acked)) {
      acked++;
      lastStreamSeq = base !== undefined ? base + acked : lastStreamSeq;
    }
    progressed();
  }

  /**
   * With `Nats-Expected-Last-Sequence` on every event, event `index` stored at
   * `base + index + 1` means every earlier event of this publisher is stored right before it,
   * whether or not its own ack was asked for (or has arrived yet).
   */
  function onChainAck(index: number, seq: number) {
    if (index >= sent || index === held?.index) {
      fail(new PublishError(`ack for event ${index}, which was not published (stream seq ${seq})`));
      return;
    }
    if (seq !== base! + index + 1) {
      fail(new PublishError(`event ${index} stored at stream seq ${seq}, expected ${base! + index + 1}`));
      return;
    }
    lastProgress = performance.now();
    if (index < acked) return; // an earlier ack arriving late: nothing new
    acked = index + 1;
    lastStreamSeq = seq;
    progressed();
  }

  function progressed() {
    // Checkpoints, in order.
    while (cpHead < checkpoints.length && checkpoints[cpHead].upTo <= acked && !error && !closed) {
      const { fn } = checkpoints[cpHead];
      cpHead++;
      try {
        fn();
      } catch (cause) {
        fail(new Error('a publisher checkpoint callback threw', { cause }));
        return;
      }
    }
    if (cpHead === checkpoints.length) {
      checkpoints.length = 0;
      cpHead = 0;
    } else if (cpHead > 1024) {
      checkpoints.splice(0, cpHead);
      cpHead = 0;
    }
    if (roomWaiters.length > 0 && sent - acked <= lowWater) {
      const waiters = roomWaiters;
      roomWaiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  /** Stream seq of a plain ack (`{"stream":"<stream>", "seq":N}`), or -1 for anything else. */
  function plainAckSeq(d: Uint8Array): number {
    const n = ackPrefix.length;
    const end = d.length - 1;
    if (end <= n || end - n > 15 || d[end] !== 0x7d /* } */) return -1;
    for (let i = 0; i < n; i++) if (d[i] !== ackPrefix[i]) return -1;
    let v = 0;
    for (let i = n; i < end; i++) {
      const c = d[i];
      if (c < 48 || c > 57) return -1;
      v = v * 10 + (c - 48);
    }
    return v;
  }

  function onReply(msg: Msg) {
    const index = Number(msg.subject.slice(inboxPrefixLen));
    if (!Number.isSafeInteger(index)) return; // not one of ours
    const h = msg.headers;
    if (!h) {
      const seq = plainAckSeq(msg.data);
      if (seq >= 0) {
        onAck(index, seq);
        return;
      }
    }
    if (h && (h.code >= 400 || h.hasError)) {
      const why = h.code === 503 ? 'no responders: no JetStream stream stores this subject (or JetStream is unavailable)' : h.description;
      fail(new PublishError(`event ${index}: ${h.code} ${why}`, h.code));
      return;
    }
    const s = ackText(msg.data);
    if (s.includes('"error"')) {
      let code: number | undefined;
      let description = s;
      try {
        const parsed = JSON.parse(s) as { error?: { code?: number; err_code?: number; description?: string } };
        code = parsed.error?.err_code ?? parsed.error?.code;
        description = parsed.error?.description ?? s;
      } catch {
        /* keep the raw text */
      }
      fail(new PublishError(`JetStream refused event ${index}: ${description}${code !== undefined ? ` (${code})` : ''}${unstoredFrom(description, index)}`, code));
      return;
    }
    const m = SEQ_FIELD.exec(s);
    const seq = m ? Number(m[1]) : NaN;
    if (!Number.isSafeInteger(seq) || !streamField.test(s)) {
      fail(new PublishError(`unexpected reply to event ${index}: ${s.slice(0, 200)}`));
      return;
    }
    if (DUPLICATE_FIELD.test(s)) {
      fail(new PublishError(`event ${index} was a duplicate of stream seq ${seq}: it was stored before, so the resume position is wrong`));
      return;
    }
    onAck(index, seq);
  }

  /**
   * With sparse acks the event that got the error is not always the first one refused: a
   * "wrong last sequence: N" names the stream's last sequence, so the first event missing.
   */
  function unstoredFrom(description: string, index: number): string {
    if (base === undefined) return '';
    if (/wrong last msg id/i.test(description)) {
      return `; the stream's last message is not this publisher's event ${index - 1}: an event before it was refused in silence, or something else wrote to the stream (walnats must be its only writer)`;
    }
    const m = /wrong last sequence: (\d+)/.exec(description);
    if (!m) return '';
    const first = Number(m[1]) - base;
    if (first < 0 || first >= index) return '';
    return `; the stream holds this publisher's events up to ${first - 1}: event ${first} and the ones after it were not stored (published without asking for an ack, the first was refused or lost in silence; a publisher resuming from the stream asks for its first event's ack, which gives JetStream's reason)`;
  }

  const sub: Subscription = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) fail(new PublishError('ack subscription failed', undefined, { cause: err }));
      else if (!error && !closed) onReply(msg);
    },
  });
  void sub.closed.then((e) => {
    if (e) fail(new PublishError('ack subscription closed', undefined, { cause: e }));
  });
  void nc.closed().then((e) => fail(new PublishError('NATS connection closed', undefined, e ? { cause: e } : undefined)));

  // Disconnects lose the acks of outstanding events.
  statusSource = nc.status();
  statusIter = statusSource[Symbol.asyncIterator]();
  void (async () => {
    try {
      for (;;) {
        const it = statusIter;
        if (!it) return;
        const r = await it.next();
        if (r.done) return;
        const st = r.value as { type: string; server?: string };
        if (st.type === 'disconnect' && sent > acked) {
          fail(new PublishError(`disconnected from NATS (${st.server ?? '?'}) with ${sent - acked} events unacknowledged`));
        }
      }
    } catch {
      /* iterator stopped */
    }
  })();

  function checkTimeout() {
    if (error || closed || sent === acked) return;
    const waited = performance.now() - lastProgress;
    if (waited > ackTimeoutMs) {
      fail(new PublishError(`no JetStream ack for ${Math.round(waited)} ms with ${sent - acked} events outstanding (ack timeout ${ackTimeoutMs} ms)`));
    }
  }

  function checkpoint(fn: () => void): void {
    if (error || closed) return;
    if (sent === acked && cpHead === checkpoints.length) {
      try {
        fn();
      } catch (cause) {
        fail(new Error('a publisher checkpoint callback threw', { cause }));
      }
      return;
    }
    checkpoints.push({ upTo: sent, fn });
  }

  function rejectAll(e: Error) {
    const waiters = [...roomWaiters, ...flushWaiters];
    roomWaiters = [];
    flushWaiters.clear();
    for (const w of waiters) w.reject(e);
    checkpoints.length = 0;
    cpHead = 0;
  }

  function unusable(): Error {
    return error
      ? new PublishError('publisher has failed', undefined, { cause: error })
      : new PublishError('publisher is closed');
  }

  /** Nats-Msg-Id of the previous event sent. */
  let prevMsgId: string | undefined;
  /** The newest event, not written yet (sparse acks only). */
  let held: { ev: OutboundEvent; headers: MsgHdrs; index: number } | undefined;
  let heldFlushQueued = false;

  /** Writes one event; a publish that throws fails the publisher, and the error is returned. */
  function write(ev: OutboundEvent, headers: MsgHdrs, index: number, askAck: boolean): PublishError | undefined {
    try {
      nc.publish(ev.subject, ev.body, askAck ? { reply: `${inbox}.${index}`, headers } : { headers });
      return undefined;
    } catch (cause) {
      const e = new PublishError(`cannot publish event ${ev.msgId} to ${ev.subject} (${ev.body.length} bytes body)`, undefined, { cause });
      fail(e);
      return e;
    }
  }

  function writeHeld(askAck: boolean): PublishError | undefined {
    const h = held!;
    held = undefined;
    // The first event always asks: when a session fails on an event refused in silence, the
    // next session (a new publisher from the stream's tail) starts with that same event, and its
    // ack then carries JetStream's own reason (storage full, message too large, …).
    return write(h.ev, h.headers, h.index, askAck || h.index === 0 || h.index % ackEvery === ackEvery - 1);
  }

  /** End of a burst: the last event held back asks for its ack. */
  function flushHeld() {
    heldFlushQueued = false;
    if (held && !error && !closed) writeHeld(true); // a throw has failed the publisher: `failed` reports it
  }

  return {
    send(ev: OutboundEvent): boolean {
      if (error || closed) throw unusable();
      const index = sent;
      // With the chain (base defined), each event after the first also names the previous
      // event's Nats-Msg-Id as the stream's last: the sequence alone cannot tell this
      // publisher's event from another writer's, and with sparse acks a foreign message plus
      // one event refused in silence would otherwise leave the sequences matching again.
      const h = headerBlock(ev.headers, streamLine, base !== undefined ? String(base + index) : undefined, base !== undefined && index > 0 ? prevMsgId : undefined);
      prevMsgId = ev.msgId; // what the event's Nats-Msg-Id header says (OutboundEvent)
      if (sent === acked) lastProgress = performance.now();
      if (!sparse) {
        const e = write(ev, h, index, true);
        if (e) throw e;
      } else {
        if (held) {
          const e = writeHeld(false);
          if (e) throw e;
        }
        held = { ev, headers: h, index };
        if (sent + 1 - acked >= window) {
          // The window is full: room comes only from an ack, so this one asks for it now.
          const e = writeHeld(true);
          if (e) throw e;
        } else if (!heldFlushQueued) {
          heldFlushQueued = true;
          queueMicrotask(flushHeld);
        }
      }
      sent++;
      if (!timer) {
        timer = setInterval(checkTimeout, Math.max(20, Math.min(1000, ackTimeoutMs / 4)));
        timer.unref();
      }
      return sent - acked < window;
    },

    whenRoom(): Promise<void> {
      if (error || closed) return Promise.reject(unusable());
      if (sent - acked < window) return Promise.resolve();
      return new Promise((resolve, reject) => roomWaiters.push({ resolve, reject }));
    },

    checkpoint,

    flush(): Promise<void> {
      if (error || closed) return Promise.reject(unusable());
      return new Promise<void>((resolve, reject) => {
        const w: Waiter = { resolve, reject };
        flushWaiters.add(w);
        checkpoint(() => {
          flushWaiters.delete(w);
          resolve();
        });
      });
    },

    get ackedCount() {
      return acked;
    },
    get sentCount() {
      return sent;
    },
    get inFlight() {
      return sent - acked;
    },
    get lastStreamSeq() {
      return lastStreamSeq;
    },
    get error() {
      return error;
    },
    failed,

    async close(): Promise<void> {
      if (closed) return;
      const wasFailed = !!error;
      closed = true;
      if (!wasFailed) teardown();
      rejectAll(new PublishError('publisher is closed'));
    },
  };
}
