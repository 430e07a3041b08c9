import { describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { useNatsServer } from '../harness/use-nats.ts';
import { ensureStream, StreamConflictError } from '../../src/publisher/stream.ts';
import { comparePositions, ForeignMessageError, readLastPosition, readStreamTail } from '../../src/publisher/position.ts';
import { createPublisher } from '../../src/publisher/publisher.ts';
import { createEventBuilder } from '../../src/events/envelope.ts';
import { defaultStreamName, streamSubjects } from '../../src/events/subject.ts';
import { convert, rel } from '../fixtures/publisher.ts';

describe('stream provisioning and read-back', () => {
  const { nc, jsm } = useNatsServer();

  it('creates the stream, leaves it alone when unchanged, updates changed settings', async () => {
    const spec = { name: 'walnats_prov', subjects: streamSubjects('walnats', 'prov') };
    const a = await ensureStream(jsm, spec);
    expect(a.created).toBe(true);
    expect(a.info.config.subjects).toEqual(['walnats.prov.>']);
    expect(a.info.config.duplicate_window).toBe(120_000_000_000);
    expect(a.info.config.description).toMatch(/^walnats/);

    const b = await ensureStream(jsm, spec);
    expect(b.created).toBe(false);
    expect(b.updated).toEqual([]);

    const c = await ensureStream(jsm, { ...spec, duplicateWindowMs: 30_000, maxBytes: 1 << 30, maxAgeMs: 86_400_000 });
    expect(c.updated.sort()).toEqual(['duplicate_window', 'max_age', 'max_bytes']);
    const info = await jsm.streams.info('walnats_prov');
    expect(info.config.duplicate_window).toBe(30_000_000_000);
    expect(info.config.max_bytes).toBe(1 << 30);
    expect(info.config.max_age).toBe(86_400_000_000_000);
  });

  it('refuses a stream that is not ours or has other subjects', async () => {
    await jsm.streams.add({ name: 'foreign', subjects: ['foreign.>'] });
    await expect(ensureStream(jsm, { name: 'foreign', subjects: ['foreign.>'] })).rejects.toThrow(/not created by walnats/);
    await ensureStream(jsm, { name: 'walnats_x', subjects: streamSubjects('walnats', 'x') });
    const err = await ensureStream(jsm, { name: 'walnats_x', subjects: streamSubjects('walnats', 'y') }).catch((e) => e);
    expect(err).toBeInstanceOf(StreamConflictError);
    expect(err.message).toMatch(/exists with subjects \[walnats\.x\.>\]/);
  });

  it('reports overlapping subjects clearly', async () => {
    await expect(ensureStream(jsm, { name: 'walnats_overlap', subjects: ['foreign.a.>'] })).rejects.toThrow(/overlap/);
  });

  it('accepts default stream names of hostile database names, and consumers work on them', async () => {
    for (const db of ['my db.x_y%', 'Ünïcode 🐘', '', 'x'.repeat(63), '🐘'.repeat(16)]) {
      const name = defaultStreamName('walnats', db);
      const r = await ensureStream(jsm, { name, subjects: streamSubjects('walnats', db) });
      expect(r.info.config.name).toBe(name);
      const b = createEventBuilder({ prefix: 'walnats', database: db, convert });
      const ev = b.build({ kind: 'insert', relation: rel, before: null, beforeKind: null, after: ['1', 'a'], commitLsn: 0x10n, seq: 1, lsn: 0x8n, xid: 1, commitTimeUs: 0n })!;
      const p = createPublisher(nc, { stream: name, expectedLastSeq: 0 });
      p.send(ev);
      await p.flush();
      await p.close();
      const m = await (await jetstream(nc).consumers.get(name)).next({ expires: 5000 });
      expect(m?.headers?.get('Nats-Msg-Id')).toBe(ev.msgId);
      expect(m?.subject).toBe(ev.subject);
    }
  });

  it('refuses stream names nats-server cannot live with', async () => {
    for (const name of ['a.b', 'a b', 'a*', 'a>', 'a/b', 'a%2Eb']) {
      await expect(ensureStream(jsm, { name, subjects: ['never.>'] })).rejects.toThrow(/invalid stream name/);
    }
  });

  it('reads back the last position; null for an empty stream', async () => {
    const name = 'walnats_pos';
    await ensureStream(jsm, { name, subjects: streamSubjects('walnats', 'pos') });
    expect(await readLastPosition(jsm, name)).toBeNull();
    expect(await readStreamTail(jsm, name)).toEqual({ lastSeq: 0, last: null });

    const b = createEventBuilder({ prefix: 'walnats', database: 'pos', convert });
    const pos = { lsn: 0x100n, xid: 7, commitTimeUs: 0n };
    const events = [
      b.build({ ...pos, kind: 'insert', relation: rel, before: null, beforeKind: null, after: ['1', 'a'], commitLsn: 0x200n, seq: 1 })!,
      b.build({ ...pos, kind: 'insert', relation: rel, before: null, beforeKind: null, after: ['2', 'b'], commitLsn: 0x200n, seq: 2 })!,
      b.buildSchemaEvent({ ...pos, kind: 'relation', relation: rel, previous: undefined, commitLsn: 0x300n, seq: 1 }),
    ];
    const p = createPublisher(nc, { stream: name, expectedLastSeq: 0 });
    for (const ev of events) p.send(ev);
    await p.flush();
    await p.close();

    const last = await readLastPosition(jsm, name);
    expect(last).toEqual({ commitLsn: 0x300n, seq: 1, kind: 'schema', streamSeq: 3 });
    // the schema event sorts before the row event it precedes, after everything earlier
    expect(comparePositions(last!, { commitLsn: 0x300n, seq: 1, kind: 'insert' })).toBeLessThan(0);
    expect(comparePositions(last!, { commitLsn: 0x200n, seq: 2, kind: 'insert' })).toBeGreaterThan(0);

    // a deleted message at the tail is stepped over
    await jsm.streams.deleteMessage(name, 3);
    expect(await readStreamTail(jsm, name)).toEqual({
      lastSeq: 3,
      last: { commitLsn: 0x200n, seq: 2, kind: 'insert', streamSeq: 2 },
    });
  });

  it('fails clearly when someone else wrote the last message', async () => {
    const name = 'walnats_foreignmsg';
    await ensureStream(jsm, { name, subjects: streamSubjects('walnats', 'fm') });
    const ack = await nc.request('walnats.fm.public.orders.insert', 'not from walnats');
    expect(ack.string()).toMatch(/"seq":1/);
    const err = await readLastPosition(jsm, name).catch((e) => e);
    expect(err).toBeInstanceOf(ForeignMessageError);
    expect(err.message).toMatch(/no walnats position headers/);
  });
});
