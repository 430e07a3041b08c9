/** Reading what walnats stored in JetStream, for assertions. */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { waitFor } from './ports.ts';

export interface StoredEvent {
  seq: number;
  subject: string;
  headers: Record<string, string>;
  raw: string;
  body: any;
}

export async function streamLastSeq(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(stream)).state.last_seq;
}

/** Every message of the stream, in stream order, through an ordered consumer. */
export async function readStream(nc: NatsConnection, stream: string, filter?: string): Promise<StoredEvent[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const last = info.state.last_seq;
  const out: StoredEvent[] = [];
  if (info.state.messages === 0) return out;
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, filter ? { filter_subjects: filter } : {});
  const dec = new TextDecoder();
  const iter = await consumer.consume({ max_messages: 2000 });
  for await (const m of iter) {
    const headers: Record<string, string> = {};
    if (m.headers) for (const [k, v] of m.headers) headers[k] = v[0];
    const raw = dec.decode(m.data);
    out.push({ seq: m.seq, subject: m.subject, headers, raw, body: JSON.parse(raw) });
    if (m.seq >= last || (m.info.pending === 0 && filter)) break;
  }
  await iter.close();
  return out;
}

/**
 * Waits until the stream's last sequence reaches `count`, then reads it whole. Retried as a
 * whole: right after a NATS restart or a leader change JetStream may not answer yet.
 */
export function waitForLastSeq(nc: NatsConnection, stream: string, count: number, timeoutMs: number): Promise<StoredEvent[]> {
  return waitFor(`${count} events in ${stream}`, async () => {
    try {
      if ((await streamLastSeq(nc, stream)) < count) return undefined;
      return await readStream(nc, stream);
    } catch {
      return undefined;
    }
  }, timeoutMs, 250);
}

/** Waits until `count` messages match `filter` (e.g. `walnats.db.public.t.>`) and returns them. */
export async function waitForSubject(nc: NatsConnection, stream: string, filter: string, count: number, timeoutMs = 30_000): Promise<StoredEvent[]> {
  let got: StoredEvent[] = [];
  await waitFor(`${count} messages on ${filter}`, async () => {
    try {
      got = await readFiltered(nc, stream, filter);
    } catch {
      return undefined;
    }
    return got.length >= count || undefined;
  }, timeoutMs, 100);
  return got;
}

/** Messages on a subject filter, via an ordered consumer that stops when nothing is pending. */
export async function readFiltered(nc: NatsConnection, stream: string, filter: string): Promise<StoredEvent[]> {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, { filter_subjects: filter });
  const out: StoredEvent[] = [];
  const dec = new TextDecoder();
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 1000 });
    let n = 0;
    let pending = 0;
    for await (const m of batch) {
      n++;
      const headers: Record<string, string> = {};
      if (m.headers) for (const [k, v] of m.headers) headers[k] = v[0];
      const raw = dec.decode(m.data);
      out.push({ seq: m.seq, subject: m.subject, headers, raw, body: JSON.parse(raw) });
      pending = m.info.pending;
    }
    if (n === 0 || pending === 0) break;
  }
  return out;
}
