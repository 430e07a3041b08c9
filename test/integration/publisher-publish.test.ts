import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { useNatsServer } from '../harness/use-nats.ts';
import { ensureStream } from '../../src/publisher/stream.ts';
import { readStreamTail } from '../../src/publisher/position.ts';
import { createPublisher, PublishError } from '../../src/publisher/publisher.ts';
import { createEventBuilder, type OutboundEvent } from '../../src/events/envelope.ts';
import { streamSubjects } from '../../src/events/subject.ts';
import { convert, rel } from '../fixtures/publisher.ts';

/** n insert events of database `db`, 3 per transaction. */
function makeEvents(db: string, n: number, from = 0): OutboundEvent[] {
  const b = createEventBuilder({ prefix: 'walnats', database: db, convert, now: () => 0 });
  const out: OutboundEvent[] = [];
  for (let i = from; i < from + n; i++) {
    const commitLsn = 0x1000n + BigInt(Math.floor(i / 3)) * 0x100n;
    out.push(
      b.build({
        kind: 'insert',
        relation: rel,
        before: null,
        beforeKind: null,
        after: [String(i), `row ${i}`],
        commitLsn,
        seq: (i % 3) + 1,
        lsn: commitLsn - 0x10n,
        xid: 1000 + Math.floor(i / 3),
        commitTimeUs: 0n,
      })!,
    );
  }
  return out;
}

/** Every message of the stream, in stream order: [stream seq, Nats-Msg-Id]. */
async function readAll(nc: NatsConnection, stream: string): Promise<Array<[number, string]>> {
  const jsm = await jetstreamManager(nc);
  const { messages } = (await jsm.streams.info(stream)).state;
  const out: Array<[number, string]> = [];
  if (messages === 0) return out;
  const c = await jetstream(nc).consumers.get(stream);
  const iter = await c.consume({ max_messages: 2000 });
  for await (const m of iter) {
    out.push([m.seq, m.headers?.get('Nats-Msg-Id') ?? '']);
    if (out.length === messages) break;
  }
  await iter.close();
  return out;
}

async function newStream(jsm: JetStreamManager, db: string) {
  const name = `walnats_${db}`;
  await ensureStream(jsm, { name, subjects: streamSubjects('walnats', db) });
  return name;
}

describe('pipelined publisher', () => {
  const { server, nc, jsm } = useNatsServer();

  it('stores 20k pipelined events in order, exactly once', async () => {
    const stream = await newStream(jsm, 'bulk');
    const events = makeEvents('bulk', 20_000);
    const p = createPublisher(nc, { stream, window: 512, expectedLastSeq: 0 });
    let waits = 0;
    for (const ev of events) {
      if (!p.send(ev)) {
        waits++;
        expect(p.inFlight).toBe(512);
        await p.whenRoom();
        expect(p.inFlight).toBeLessThan(512);
      }
    }
    await p.flush();
    expect(waits).toBeGreaterThan(0);
    expect(p.ackedCount).toBe(20_000);
    expect(p.inFlight).toBe(0);
    expect(p.lastStreamSeq).toBe(20_000);
    expect(p.error).toBeUndefined();
    await p.close();

    const stored = await readAll(nc, stream);
    expect(stored).toHaveLength(20_000);
    stored.forEach(([seq, id], i) => {
      expect(seq).toBe(i + 1);
      expect(id).toBe(events[i].msgId);
    });
    expect(new Set(stored.map(([, id]) => id)).size).toBe(20_000);
  });

  it('calls checkpoints in order, each once everything before it is acked', async () => {
    const stream = await newStream(jsm, 'cp');
    const p = createPublisher(nc, { stream, expectedLastSeq: 0 });
    const calls: Array<[string, number]> = [];
    p.checkpoint(() => calls.push(['idle', p.ackedCount]));
    expect(calls).toEqual([['idle', 0]]); // nothing outstanding: at once

    const events = makeEvents('cp', 1000);
    const expected: Array<[string, number]> = [];
    events.forEach((ev, i) => {
      p.send(ev);
      if (i % 100 === 99) {
        const label = `after ${i + 1}`;
        const upTo = i + 1;
        expected.push([label, upTo]);
        p.checkpoint(() => {
          calls.push([label, p.ackedCount]);
          if (upTo === 500) p.checkpoint(() => calls.push(['nested', p.ackedCount]));
        });
      }
    });
    await p.flush();
    const labels = calls.slice(1).map(([l]) => l);
    const want = expected.map(([l]) => l);
    // registered while "after 500" ran, when all 1000 were sent: it waits for all of them
    // and runs after every checkpoint registered before it
    want.push('nested');
    expect(labels).toEqual(want);
    for (const [label, acked] of calls.slice(1)) {
      const upTo = label === 'nested' ? 1000 : Number(label.split(' ')[1]);
      expect(acked).toBeGreaterThanOrEqual(upTo);
    }
    await p.close();
  });

  it('rejects an event whose expected last sequence does not match (gap at the start)', async () => {
    const stream = await newStream(jsm, 'gap1');
    const first = createPublisher(nc, { stream, expectedLastSeq: 0 });
    makeEvents('gap1', 3).forEach((ev) => first.send(ev));
    await first.flush();
    await first.close();

    // pretend one more event had been stored: the next event must not be
    const p = createPublisher(nc, { stream, expectedLastSeq: 4 });
    for (const ev of makeEvents('gap1', 5, 3)) p.send(ev);
    const err = await p.failed;
    expect(err).toBeInstanceOf(PublishError);
    expect((err as PublishError).code).toBe(10071);
    expect(err.message).toMatch(/wrong last sequence/);
    expect(p.error).toBe(err);
    // nothing more was stored: a fresh message lands at seq 4
    const ack = await nc.request('walnats.gap1.sentinel.x.insert', 'sentinel');
    expect(ack.json<{ seq: number }>().seq).toBe(4);
  });

  it('never stores events after a lost one, even pipelined (Nats-Expected-Last-Sequence)', async () => {
    for (const withExpected of [true, false]) {
      const db = withExpected ? 'lost' : 'lostctl';
      const stream = await newStream(jsm, db);
      const events = makeEvents(db, 10);
      // event 4 goes to a subject no stream stores: it is "lost"
      events[4] = { ...events[4], subject: 'nowhere.at.all' };
      const p = createPublisher(nc, { stream, expectedLastSeq: withExpected ? 0 : undefined });
      for (const ev of events) p.send(ev);
      const err = await p.failed;
      // With the header most events go out without asking for an ack (sparse acks): the
      // lost one is found through the next event that asks, which names the first missing.
      expect(err.message).toMatch(withExpected ? /event 4 and the ones after it were not stored/ : /event 4: 503 no responders/);
      const ack = await nc.request(`walnats.${db}.sentinel.x.insert`, 'sentinel');
      const seq = ack.json<{ seq: number }>().seq;
      const stored = await readAll(nc, stream);
      if (withExpected) {
        // events 0..3 stored, 5..9 refused, then the sentinel
        expect(seq).toBe(5);
        expect(stored.slice(0, 4).map(([, id]) => id)).toEqual(events.slice(0, 4).map((e) => e.msgId));
      } else {
        // control: without the header JetStream stores the events after the gap
        expect(seq).toBe(10);
      }
    }
  });

  it('asks JetStream for one ack per burst or per ackEvery events, not one per event', async () => {
    const stream = await newStream(jsm, 'sparse');
    const own = await connect({ servers: server.url });
    const p = createPublisher(own, { stream, expectedLastSeq: 0 }); // window 4096: ackEvery 128
    const before = own.stats().inMsgs;
    const events = makeEvents('sparse', 1000);
    for (const ev of events) p.send(ev); // one synchronous burst
    await p.flush();
    const acks = own.stats().inMsgs - before;
    expect(acks).toBe(1 + Math.floor(1000 / 128) + 1); // the first, every 128th, then the burst's last
    // and a burst of one still asks for its ack
    p.send(makeEvents('sparse', 1, 1000)[0]);
    await p.flush();
    expect(own.stats().inMsgs - before).toBe(acks + 1);
    expect(p.lastStreamSeq).toBe(1001);
    const stored = await readAll(nc, stream);
    expect(stored.map(([, id]) => id)).toEqual([...events.map((e) => e.msgId), makeEvents('sparse', 1, 1000)[0].msgId]);
    await p.close();
    await own.close();
  });

  it('an event JetStream refuses in silence (sent without an ack asked) fails the publisher and nothing after it is stored', async () => {
    const db = 'silent';
    const name = `walnats_${db}`;
    await jsm.streams.add({ name, subjects: streamSubjects('walnats', db), max_msg_size: 4096, duplicate_window: 120_000_000_000 });
    const events = makeEvents(db, 300);
    // event 50 is too large for the stream: refused, and it asks for no ack (50 % 128 != 127)
    events[50] = { ...events[50], body: new TextEncoder().encode(JSON.stringify({ pad: 'x'.repeat(8000) })) };
    const p = createPublisher(nc, { stream: name, expectedLastSeq: 0 });
    let called = false;
    for (const ev of events) p.send(ev);
    p.checkpoint(() => (called = true));
    const err = await p.failed;
    expect(err).toBeInstanceOf(PublishError);
    expect((err as PublishError).code).toBe(10071);
    expect(err.message).toMatch(/up to 49: event 50 and the ones after it were not stored/);
    expect(called).toBe(false);
    expect(p.ackedCount).toBeLessThanOrEqual(50);
    const stored = await readAll(nc, name);
    expect(stored.map(([, id]) => id)).toEqual(events.slice(0, 50).map((e) => e.msgId));
    // The retry: a publisher resuming from the stream's tail starts with the refused event, and
    // its first event asks for an ack, so JetStream's own reason is seen (not a sequence error).
    const retry = createPublisher(nc, { stream: name, expectedLastSeq: 50 });
    for (const ev of events.slice(50)) retry.send(ev);
    const why = await retry.failed;
    expect(why.message).toMatch(/JetStream refused event 0: message size exceeds maximum allowed/);
    expect((await readAll(nc, name)).length).toBe(50);
  });

  it('another writer\'s message in the middle of a burst fails the publisher; no ack counts an event that was not stored', async () => {
    // The sequence chain alone heals here: event 4 (no ack asked; held back as the newest
    // when the foreign message goes out, so it lands after it) is refused because the foreign
    // message took its place, and event 5 then matches the stream's last sequence again.
    // Each event also naming the previous one's Nats-Msg-Id breaks the chain for good.
    const stream = await newStream(jsm, 'foreign');
    const events = makeEvents('foreign', 10);
    const p = createPublisher(nc, { stream, expectedLastSeq: 0 });
    let confirmed = false;
    events.forEach((ev, i) => {
      p.send(ev);
      if (i === 4) nc.publish('walnats.foreign.public.t.insert', 'not walnats');
    });
    p.checkpoint(() => (confirmed = true));
    const err = await p.failed;
    expect(err).toBeInstanceOf(PublishError);
    expect(err.message).toMatch(/JetStream refused event 9: wrong last (msg ID|sequence)/);
    expect(confirmed).toBe(false);
    expect(p.ackedCount).toBeLessThanOrEqual(4);
    const stored = await readAll(nc, stream);
    expect(stored.map(([, id]) => id)).toEqual([...events.slice(0, 4).map((e) => e.msgId), '']); // nothing of ours after it
  });

  it('a window smaller than ackEvery still fills and drains (the event that fills it asks for its ack)', async () => {
    const stream = await newStream(jsm, 'tiny');
    const p = createPublisher(nc, { stream, window: 3, ackEvery: 100, expectedLastSeq: 0 });
    const events = makeEvents('tiny', 50);
    let waits = 0;
    for (const ev of events) {
      if (!p.send(ev)) {
        waits++;
        await p.whenRoom();
      }
    }
    await p.flush();
    expect(waits).toBeGreaterThan(10);
    expect(p.ackedCount).toBe(50);
    expect((await readAll(nc, stream)).map(([, id]) => id)).toEqual(events.map((e) => e.msgId));
    await p.close();
  });

  it('fails on a duplicate ack (an event already stored)', async () => {
    const stream = await newStream(jsm, 'dup');
    const events = makeEvents('dup', 5);
    const a = createPublisher(nc, { stream });
    events.forEach((ev) => a.send(ev));
    await a.flush();
    await a.close();
    const b = createPublisher(nc, { stream });
    b.send(events[4]);
    const err = await b.failed;
    expect(err.message).toMatch(/duplicate of stream seq 5/);
    expect((await jsm.streams.info(stream)).state.messages).toBe(5);
  });

  it('fails (does not hang) when no ack comes', async () => {
    const sink = nc.subscribe('blackhole.>', { callback: () => {} });
    const p = createPublisher(nc, { stream: 'none', ackTimeoutMs: 200 });
    const ev = makeEvents('bh', 1)[0];
    p.send({ ...ev, subject: 'blackhole.x' });
    let called = false;
    p.checkpoint(() => (called = true));
    const err = await p.failed;
    expect(err.message).toMatch(/no JetStream ack/);
    expect(called).toBe(false);
    expect(() => p.send(ev)).toThrow(/publisher has failed/);
    await expect(p.whenRoom()).rejects.toThrow(/failed/);
    await expect(p.flush()).rejects.toThrow(/failed/);
    sink.unsubscribe();
  });

  it('fails when its connection closes', async () => {
    const nc2 = await connect({ servers: server.url });
    const stream = await newStream(jsm, 'close');
    const p = createPublisher(nc2, { stream });
    const pending = p.flush();
    await nc2.close();
    expect((await p.failed).message).toMatch(/connection closed/);
    await expect(pending).resolves.toBeUndefined(); // nothing was outstanding
  });
});

describe('publisher when nats-server stops mid-window', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNats();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('fails instead of hanging, leaves no gap, and a new publisher resumes from the stream', async () => {
    const N = 30_000;
    const events = makeEvents('outage', N);
    let nc = await connect({ servers: server.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    let jsm = await jetstreamManager(nc);
    const stream = await newStream(jsm, 'outage');

    const p = createPublisher(nc, { stream, window: 4096, expectedLastSeq: 0, ackTimeoutMs: 10_000 });
    let stopping: Promise<void> | undefined;
    let sent = 0;
    let checkpointAfterStop = false;
    try {
      while (sent < N) {
        if (!p.send(events[sent++])) await p.whenRoom();
        if (!stopping && p.ackedCount > 1000) {
          stopping = server.stop();
          p.checkpoint(() => (checkpointAfterStop = true));
        }
      }
    } catch (e) {
      // send throws once failed; whenRoom rejects with the failure itself
      expect(p.error).toBeDefined();
      expect(e === p.error || (e as Error).cause === p.error).toBe(true);
    }
    expect(stopping).toBeDefined();
    const err = await p.failed;
    expect(err.message).toMatch(/disconnected|connection closed|no JetStream ack/);
    expect(p.inFlight).toBeGreaterThan(0);
    expect(checkpointAfterStop).toBe(false);
    await stopping;
    await nc.close();

    await server.start();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    const tail = await readStreamTail(jsm, stream);
    const stored = tail.lastSeq;
    expect(stored).toBeGreaterThan(1000);
    expect(stored).toBeLessThan(N);
    // resume as the daemon does: after the last stored event
    const resumeAt = events.findIndex((e) => e.commitLsn === tail.last!.commitLsn && e.seq === tail.last!.seq) + 1;
    expect(resumeAt).toBe(stored);
    const q = createPublisher(nc, { stream, expectedLastSeq: tail.lastSeq });
    for (let i = resumeAt; i < N; i++) if (!q.send(events[i])) await q.whenRoom();
    await q.flush();
    await q.close();

    const all = await readAll(nc, stream);
    expect(all).toHaveLength(N);
    all.forEach(([seq, id], i) => {
      expect(seq).toBe(i + 1);
      expect(id).toBe(events[i].msgId);
    });
    await nc.close();
  });
});
