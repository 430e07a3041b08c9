import { describe, expect, it } from 'vitest';
import type { PgoutputMessage } from '../../src/decoder/messages.ts';
import {
  PgoutputDecodeError,
  createPgoutputDecoder,
  decodePgoutputMessage,
  type DecodeContext,
} from '../../src/decoder/pgoutput.ts';
import { fixtureNames, loadFixture, type Fixture, type FixtureMessage } from '../fixtures/pgoutput/load.ts';

const TAG_BY_BYTE: Record<string, PgoutputMessage['tag']> = {
  B: 'begin', C: 'commit', O: 'origin', R: 'relation', Y: 'type', I: 'insert', U: 'update', D: 'delete',
  T: 'truncate', M: 'message', S: 'stream_start', E: 'stream_stop', c: 'stream_commit', A: 'stream_abort',
  b: 'begin_prepare', P: 'prepare', K: 'commit_prepared', r: 'rollback_prepared', p: 'stream_prepare',
};

interface Decoded {
  raw: FixtureMessage;
  msg: PgoutputMessage;
  /** The context the message was decoded in (for one-shot re-decoding). */
  ctx: DecodeContext;
}

/**
 * The message as plain data: byte arrays become number arrays (toEqual does not compare a
 * Buffer's bytes with a Uint8Array's), bigints become strings.
 */
function plain(msg: PgoutputMessage): unknown {
  return JSON.parse(JSON.stringify(msg, (_k, v: unknown) => (v instanceof Uint8Array ? { bytes: Array.from(v) } : typeof v === 'bigint' ? `${v}n` : v)));
}

function decodeAll(f: Fixture): Decoded[] {
  const d = createPgoutputDecoder({ protocolVersion: f.protoVersion });
  return f.messages.map((raw) => {
    const ctx: DecodeContext = { protocolVersion: f.protoVersion, inStream: d.inStream };
    return { raw, msg: d.decode(raw.bytes), ctx };
  });
}

const fixtures = fixtureNames().map(loadFixture);
const decoded = new Map(fixtures.map((f) => [f.scenario, decodeAll(f)]));

function msgs(name: string): PgoutputMessage[] {
  const d = decoded.get(name);
  if (!d) throw new Error(`no fixture ${name}`);
  return d.map((x) => x.msg);
}

describe('captured fixtures', () => {
  it('cover every pgoutput message type Postgres 15 can send', () => {
    const seen = new Set(fixtures.flatMap((f) => f.messages.map((m) => m.type)));
    expect([...seen].sort()).toEqual(Object.keys(TAG_BY_BYTE).sort());
  });

  describe.each(fixtures.map((f) => [f.scenario, f] as const))('%s', (name, f) => {
    const all = decoded.get(name)!;

    it('decodes every message to the tag of its type byte', () => {
      for (const { raw, msg } of all) expect(msg.tag, raw.lsnText).toBe(TAG_BY_BYTE[raw.type]);
    });

    it('agrees with the captured lsn/xid columns', () => {
      let finalLsn: bigint | undefined;
      for (const { raw, msg } of all) {
        switch (msg.tag) {
          case 'begin':
            expect(msg.xid).toBe(raw.xid);
            expect(msg.finalLsn).toBeGreaterThanOrEqual(raw.lsn);
            finalLsn = msg.finalLsn;
            break;
          case 'commit':
            // Begin announces the commit record's LSN; the walsender sends Commit at its end.
            expect(msg.commitLsn).toBe(finalLsn);
            expect(msg.endLsn).toBe(raw.lsn);
            expect(msg.endLsn).toBeGreaterThan(msg.commitLsn);
            break;
          case 'message':
            expect(msg.lsn).toBe(raw.lsn);
            break;
          case 'stream_start':
          case 'stream_commit':
            expect(msg.xid).toBe(raw.xid);
            break;
          case 'begin_prepare':
          case 'prepare':
          case 'commit_prepared':
          case 'rollback_prepared':
          case 'stream_prepare':
            expect(msg.xid).toBe(raw.xid);
            break;
        }
        if (msg.tag === 'stream_commit' || msg.tag === 'prepare' || msg.tag === 'stream_prepare' || msg.tag === 'commit_prepared') {
          expect(msg.endLsn).toBe(raw.lsn);
        }
        if (msg.tag === 'rollback_prepared') expect(msg.rollbackEndLsn).toBe(raw.lsn);
      }
    });

    it('carries an xid on changes exactly inside stream blocks', () => {
      for (const { msg, ctx } of all) {
        if ('xid' in msg && ['relation', 'type', 'insert', 'update', 'delete', 'truncate', 'message'].includes(msg.tag)) {
          if (ctx.inStream) expect(msg.xid).toBeTypeOf('number');
          else expect(msg.xid).toBeUndefined();
        }
      }
      if (f.streaming) expect(all.some((d) => d.ctx.inStream)).toBe(true);
    });

    it('rejects every strict prefix of every message with PgoutputDecodeError', () => {
      for (const { raw, ctx } of all) {
        for (let n = 0; n < raw.bytes.length; n++) {
          let err: unknown;
          try {
            decodePgoutputMessage(raw.bytes.subarray(0, n), ctx);
          } catch (e) {
            err = e;
          }
          if (!(err instanceof PgoutputDecodeError)) {
            throw new Error(`prefix of ${n}/${raw.bytes.length} bytes of ${raw.type} at ${raw.lsnText} did not throw PgoutputDecodeError: ${err}`);
          }
        }
      }
    });

    it('rejects trailing bytes', () => {
      for (const { raw, ctx } of all) {
        const longer = new Uint8Array(raw.bytes.length + 1);
        longer.set(raw.bytes);
        expect(() => decodePgoutputMessage(longer, ctx)).toThrow(/trailing byte/);
      }
    });

    // node-postgres hands over Node Buffers (whose slice() is a view, not a copy), carved
    // out of a socket read buffer it reuses: both kinds of input must give independent output.
    it.each([
      ['Uint8Array', (b: Uint8Array) => new Uint8Array(b)],
      ['Node Buffer', (b: Uint8Array) => Buffer.from(b)],
      ['Node Buffer view into a larger buffer', (b: Uint8Array) => Buffer.concat([Buffer.from([0xee]), b]).subarray(1)],
    ])('returns nothing that shares memory with the input (%s)', (_kind, copyOf) => {
      for (const { raw, ctx } of all) {
        const buf = copyOf(raw.bytes);
        const msg = decodePgoutputMessage(buf, ctx);
        const before = plain(msg);
        buf.fill(0xaa);
        expect(plain(msg)).toEqual(before);
        // And the same once more with the buffer reused for a different message, as
        // node-postgres does.
        expect(plain(msg)).toEqual(plain(decodePgoutputMessage(raw.bytes, ctx)));
      }
    });
  });
});

describe('decoded values', () => {
  it('identity-default: relation, inserts with NULLs and UTF-8, update without old tuple, delete by key', () => {
    const m = msgs('identity-default');
    expect(m.map((x) => x.tag)).toEqual([
      'begin', 'relation', 'insert', 'insert', 'commit', 'begin', 'update', 'commit', 'begin', 'delete', 'commit',
    ]);
    const rel = m[1] as Extract<PgoutputMessage, { tag: 'relation' }>;
    expect(rel.relation).toMatchObject({ schema: 'public', name: 'items', replicaIdentity: 'default' });
    expect(rel.relation.columns).toEqual([
      { name: 'id', typeOid: 23, typeMod: -1, isKey: true },
      { name: 'name', typeOid: 25, typeMod: -1, isKey: false },
      { name: 'qty', typeOid: 23, typeMod: -1, isKey: false },
      // numeric(10,2): typmod = ((10 << 16) | 2) + 4
      { name: 'price', typeOid: 1700, typeMod: ((10 << 16) | 2) + 4, isKey: false },
      { name: 'tags', typeOid: 1009, typeMod: -1, isKey: false },
    ]);
    expect(m[2]).toEqual({ tag: 'insert', xid: undefined, relationOid: rel.relation.oid, newTuple: ['1', 'apple', '3', '1.50', '{a,b}'] });
    expect(m[3]).toMatchObject({ newTuple: ['2', 'Bär ☃', null, null, null] });
    expect(m[6]).toEqual({
      tag: 'update', xid: undefined, relationOid: rel.relation.oid, oldKind: null, oldTuple: null,
      newTuple: ['1', 'apple', '4', '1.50', '{a,b}'],
    });
    expect(m[9]).toEqual({ tag: 'delete', xid: undefined, relationOid: rel.relation.oid, oldKind: 'key', oldTuple: ['2', null, null, null, null] });
    expect(m[4]).toMatchObject({ tag: 'commit', flags: 0 });
  });

  it('identity-full: whole old row (O) on update and delete', () => {
    const m = msgs('identity-full');
    expect(m[1]).toMatchObject({ relation: { name: 'full_t', replicaIdentity: 'full' } });
    expect(m[2]).toMatchObject({ tag: 'update', oldKind: 'old', oldTuple: ['1', 'one', '10'], newTuple: ['1', 'one', '11'] });
    expect(m[5]).toMatchObject({ tag: 'delete', oldKind: 'old', oldTuple: ['1', 'one', '11'] });
  });

  it('identity-index: key tuple (K) only when the index column changes', () => {
    const m = msgs('identity-index');
    const rel = m[1] as Extract<PgoutputMessage, { tag: 'relation' }>;
    expect(rel.relation.replicaIdentity).toBe('index');
    expect(rel.relation.columns.map((c) => c.isKey)).toEqual([false, true, false]);
    expect(m[2]).toMatchObject({ tag: 'update', oldKind: null, oldTuple: null, newTuple: ['1', 'a', '2'] });
    expect(m[5]).toMatchObject({ tag: 'update', oldKind: 'key', oldTuple: [null, 'a', null], newTuple: ['1', 'b', '2'] });
    expect(m[8]).toMatchObject({ tag: 'delete', oldKind: 'key', oldTuple: [null, 'b', null] });
  });

  it('update-key-change: old composite key then new row', () => {
    const m = msgs('update-key-change');
    expect(m[2]).toMatchObject({ tag: 'update', oldKind: 'key', oldTuple: ['1', '1', null], newTuple: ['1', '2', 'x'] });
  });

  it('toast-unchanged: unchanged TOASTed column decodes to undefined', () => {
    const m = msgs('toast-unchanged');
    const ins = m[2] as Extract<PgoutputMessage, { tag: 'insert' }>;
    expect(ins.newTuple[2]).toMatch(/^[0-9a-f]{6400}$/);
    expect((ins.newTuple[2] as string).slice(0, 32)).toBe('c4ca4238a0b923820dcc509a6f75849b'); // md5('1')
    const upd = m[5] as Extract<PgoutputMessage, { tag: 'update' }>;
    expect(upd.newTuple).toEqual(['1', 'second', undefined]);
    expect(upd.newTuple.length).toBe(3);
    expect(2 in upd.newTuple).toBe(true);
  });

  it('truncate: options bits and relation OIDs in order', () => {
    const m = msgs('truncate');
    const rels = m.filter((x): x is Extract<PgoutputMessage, { tag: 'relation' }> => x.tag === 'relation');
    const oid = (name: string) => rels.find((r) => r.relation.name === name)!.relation.oid;
    expect(m[2]).toEqual({
      tag: 'truncate', xid: undefined, options: 0, cascade: false, restartIdentity: false, relationOids: [oid('plain_t')],
    });
    expect(m[8]).toEqual({
      tag: 'truncate', xid: undefined, options: 3, cascade: true, restartIdentity: true,
      relationOids: [oid('parent_a'), oid('parent_b'), oid('child_c')],
    });
  });

  it('messages: flags, prefix, binary content', () => {
    const m = msgs('messages');
    expect(m.map((x) => x.tag)).toEqual(['message', 'begin', 'relation', 'insert', 'message', 'commit', 'message']);
    expect(m[0]).toMatchObject({ flags: 0, transactional: false, prefix: 'walnats.test', content: Uint8Array.from([0x00, 0xff, 0x01, 0x02, 0xfe, 0xed]) });
    expect(m[4]).toMatchObject({ flags: 1, transactional: true, prefix: 'walnats.tx', content: Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00]) });
    expect(m[6]).toMatchObject({ transactional: false, prefix: 'walnats.kept', content: new TextEncoder().encode('kept') });
  });

  it('enum-type: Type message names the enum, the column uses its OID', () => {
    const m = msgs('enum-type');
    const t = m[1] as Extract<PgoutputMessage, { tag: 'type' }>;
    expect(t).toMatchObject({ tag: 'type', xid: undefined, schema: 'public', name: 'mood' });
    expect(m[2]).toMatchObject({ relation: { name: 'moods', columns: [{ name: 'id' }, { name: 'm', typeOid: t.typeOid }] } });
    expect(m[3]).toMatchObject({ newTuple: ['1', 'happy'] });
  });

  it('origin: name and origin LSN', () => {
    const m = msgs('origin');
    expect(m[1]).toEqual({ tag: 'origin', originLsn: 0xabcdefn, name: 'upstream' });
    // pg_replication_origin_xact_setup also set the commit time: 2024-01-01 00:00:00 UTC.
    expect((m[0] as Extract<PgoutputMessage, { tag: 'begin' }>).commitTimeUs).toBe(
      BigInt(Date.UTC(2024, 0, 1) - Date.UTC(2000, 0, 1)) * 1000n,
    );
  });

  it('stream-abort: segments, xids inside blocks, subtransaction and whole-transaction aborts, stream commit', () => {
    const all = decoded.get('stream-abort')!;
    const m = all.map((d) => d.msg);
    const starts = m.filter((x): x is Extract<PgoutputMessage, { tag: 'stream_start' }> => x.tag === 'stream_start');
    expect(starts.map((s) => s.firstSegment)).toEqual([true, false, false, true]);
    const top = starts[0].xid;
    const aborts = m.filter((x): x is Extract<PgoutputMessage, { tag: 'stream_abort' }> => x.tag === 'stream_abort');
    expect(aborts).toHaveLength(2);
    // ROLLBACK TO SAVEPOINT aborts a subtransaction of the streamed one…
    expect(aborts[0]).toMatchObject({ xid: top, abortLsn: undefined, abortTimeUs: undefined });
    expect(aborts[0].subxid).not.toBe(top);
    // …ROLLBACK of the second transaction aborts all of it.
    expect(aborts[1].xid).toBe(starts[3].xid);
    expect(aborts[1].subxid).toBe(aborts[1].xid);
    const commit = m.find((x) => x.tag === 'stream_commit') as Extract<PgoutputMessage, { tag: 'stream_commit' }>;
    expect(commit.xid).toBe(top);
    expect(commit.commitLsn).toBeLessThan(commit.endLsn);
    const msg = m.find((x) => x.tag === 'message') as Extract<PgoutputMessage, { tag: 'message' }>;
    expect(msg).toMatchObject({ xid: top, transactional: true, prefix: 'walnats.stream' });
    const trunc = m.find((x) => x.tag === 'truncate') as Extract<PgoutputMessage, { tag: 'truncate' }>;
    expect(trunc.xid).toBeTypeOf('number');
    // Stream Abort and Stream Commit are sent outside stream blocks.
    for (const d of all) if (d.msg.tag === 'stream_abort' || d.msg.tag === 'stream_commit') expect(d.ctx.inStream).toBe(false);
    const inserts = m.filter((x) => x.tag === 'insert');
    expect(inserts.length).toBeGreaterThan(300);
    expect(inserts[0]).toMatchObject({ xid: top, newTuple: ['1', 'x'.repeat(200), 'red'] });
  });

  it('two-phase: begin prepare, prepare, commit prepared, rollback prepared', () => {
    const m = msgs('two-phase');
    expect(m.map((x) => x.tag)).toEqual([
      'begin_prepare', 'relation', 'insert', 'prepare', 'commit_prepared', 'begin_prepare', 'insert', 'prepare', 'rollback_prepared',
    ]);
    const [bp, , , p, cp] = m as [Extract<PgoutputMessage, { tag: 'begin_prepare' }>, unknown, unknown,
      Extract<PgoutputMessage, { tag: 'prepare' }>, Extract<PgoutputMessage, { tag: 'commit_prepared' }>];
    expect(bp.gid).toBe('walnats-gid-1');
    expect(p).toMatchObject({ gid: 'walnats-gid-1', xid: bp.xid, prepareLsn: bp.prepareLsn, endLsn: bp.endLsn, prepareTimeUs: bp.prepareTimeUs });
    expect(cp).toMatchObject({ gid: 'walnats-gid-1', xid: bp.xid });
    expect(cp.commitLsn).toBeGreaterThanOrEqual(p.endLsn);
    const rp = m[8] as Extract<PgoutputMessage, { tag: 'rollback_prepared' }>;
    const p2 = m[7] as Extract<PgoutputMessage, { tag: 'prepare' }>;
    expect(rp).toMatchObject({ gid: 'walnats-gid-2', xid: p2.xid, prepareEndLsn: p2.endLsn, prepareTimeUs: p2.prepareTimeUs });
    expect(rp.rollbackTimeUs).toBeGreaterThanOrEqual(rp.prepareTimeUs);
  });

  it('stream-prepare: streamed prepared transaction', () => {
    const m = msgs('stream-prepare');
    const sp = m.find((x) => x.tag === 'stream_prepare') as Extract<PgoutputMessage, { tag: 'stream_prepare' }>;
    expect(sp).toMatchObject({ gid: 'walnats-big', flags: 0 });
    expect((m[0] as Extract<PgoutputMessage, { tag: 'stream_start' }>).xid).toBe(sp.xid);
    expect(m.at(-1)).toMatchObject({ tag: 'commit_prepared', gid: 'walnats-big', xid: sp.xid, commitLsn: sp.endLsn });
  });
});

/** Builds a message by hand: type char then big-endian fields. */
function bytes(...parts: Array<string | [number, 1 | 2 | 4 | 8]>): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'string') {
      out.push(...new TextEncoder().encode(p));
      continue;
    }
    const [v, n] = p;
    let big = BigInt.asUintN(n * 8, BigInt(v));
    const b: number[] = [];
    for (let i = 0; i < n; i++) {
      b.unshift(Number(big & 0xffn));
      big >>= 8n;
    }
    out.push(...b);
  }
  return Uint8Array.from(out);
}

function decodeError(fn: () => unknown): PgoutputDecodeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PgoutputDecodeError) return e;
    throw new Error(`expected PgoutputDecodeError, got ${e}`);
  }
  throw new Error('expected PgoutputDecodeError, nothing thrown');
}

describe('hand-built messages', () => {
  // Postgres 15 speaks protocol ≤ 3, so the v4 shape of Stream Abort (with `streaming
  // parallel`: abort LSN and abort time after xid/subxid) cannot be captured here.
  it('v4 parallel Stream Abort carries abort LSN and time', () => {
    const b = bytes('A', [700, 4], [701, 4], [0x1_0000_1234, 8], [-5, 8]);
    const d = createPgoutputDecoder({ protocolVersion: 4, parallelStreaming: true });
    expect(d.decode(b)).toEqual({ tag: 'stream_abort', xid: 700, subxid: 701, abortLsn: 0x1_0000_1234n, abortTimeUs: -5n });
    for (let n = 0; n < b.length; n++) expect(() => d.decode(b.subarray(0, n))).toThrow(PgoutputDecodeError);
  });

  it('Stream Abort without parallel streaming (or below v4) has no abort LSN/time', () => {
    const short = bytes('A', [700, 4], [701, 4]);
    const long = bytes('A', [700, 4], [701, 4], [1, 8], [2, 8]);
    for (const opts of [{ protocolVersion: 4 }, { protocolVersion: 3, parallelStreaming: true }]) {
      const d = createPgoutputDecoder(opts);
      expect(d.decode(short)).toEqual({ tag: 'stream_abort', xid: 700, subxid: 701, abortLsn: undefined, abortTimeUs: undefined });
      expect(() => d.decode(long)).toThrow(/16 unexpected trailing byte/);
    }
    expect(() => createPgoutputDecoder({ protocolVersion: 4, parallelStreaming: true }).decode(short)).toThrow(PgoutputDecodeError);
  });

  it('unknown type byte is named in hex and as a character', () => {
    const d = createPgoutputDecoder({ protocolVersion: 1 });
    const e = decodeError(() => d.decode(bytes('Z', [1, 4])));
    expect(e.message).toMatch(/unknown pgoutput message type 0x5a 'Z'/);
    expect(e.byte).toBe(0x5a);
    expect(e.offset).toBe(0);
    const nonPrintable = decodeError(() => d.decode(Uint8Array.of(0x01)));
    expect(nonPrintable.message).toMatch(/0x01/);
    expect(nonPrintable.byte).toBe(1);
  });

  it('empty input', () => {
    const e = decodeError(() => createPgoutputDecoder({ protocolVersion: 1 }).decode(new Uint8Array(0)));
    expect(e.byte).toBe(-1);
    expect(e.message).toMatch(/empty/);
  });

  it('truncation error says what, where, needed and available', () => {
    const e = decodeError(() => createPgoutputDecoder({ protocolVersion: 1 }).decode(bytes('B', [1, 8], [2, 4])));
    expect(e.message).toBe("pgoutput message 0x42 'B' truncated: reading commit time at offset 9 needs 8 byte(s), 4 available");
    expect(e.offset).toBe(9);
    expect(e.byte).toBe(0x42);
  });

  const insert = (...tuple: Array<string | [number, 1 | 2 | 4 | 8]>) => bytes('I', [16384, 4], 'N', ...tuple);

  it('binary tuple values are copied byte arrays', () => {
    const b = insert([2, 2], 'b', [3, 4], '\x01\x02\x03', 't', [0, 4]);
    const msg = decodePgoutputMessage(b, { protocolVersion: 1, inStream: false });
    expect(msg).toEqual({ tag: 'insert', xid: undefined, relationOid: 16384, newTuple: [Uint8Array.of(1, 2, 3), ''] });
    b.fill(0);
    expect((msg as Extract<PgoutputMessage, { tag: 'insert' }>).newTuple[0]).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('keeps a leading byte order mark in text values', () => {
    const msg = decodePgoutputMessage(insert([1, 2], 't', [3, 4], '\uFEFF'), { protocolVersion: 1, inStream: false });
    expect((msg as Extract<PgoutputMessage, { tag: 'insert' }>).newTuple[0]).toBe('\uFEFF');
  });

  it.each([
    ['invalid UTF-8', Uint8Array.from([...insert([1, 2], 't', [2, 4]), 0xc3, 0x28]), /not valid UTF-8/],
    ['unknown tuple column kind', insert([1, 2], 'x'), /unknown tuple column kind 0x78 'x' for column 1 of 1/],
    ['negative value length', insert([1, 2], 't', [-1, 4]), /negative text value length -1/],
    ['missing N in insert', bytes('I', [16384, 4], 'K', [0, 2]), /expected 'N' \(new tuple\), got 0x4b 'K'/],
    ['bad old-tuple kind in delete', bytes('D', [16384, 4], 'N', [0, 2]), /expected 'K' \(key\) or 'O'/],
    ['bad tuple kind in update', bytes('U', [16384, 4], 'X', [0, 2]), /expected 'N' \(new tuple\), got 0x58 'X'/],
    ['unknown replica identity', bytes('R', [1, 4], 's\0', 't\0', 'x', [0, 2]), /unknown replica identity 0x78 'x'/],
    ['string without NUL', bytes('O', [1, 8], 'upstream'), /origin name at offset 9 has no NUL terminator/],
    ['huge truncate count', bytes('T', [0x7fffffff, 4], [0, 1], [1, 4]), /truncated: 2147483647 relation OIDs/],
  ])('rejects %s', (_, b, re) => {
    const e = decodeError(() => decodePgoutputMessage(b, { protocolVersion: 1, inStream: false }));
    expect(e.message).toMatch(re);
  });

  it('the invalid UTF-8 error keeps the TextDecoder error as cause', () => {
    const e = decodeError(() => decodePgoutputMessage(Uint8Array.from([...insert([1, 2], 't', [1, 4]), 0xff]), { protocolVersion: 1, inStream: false }));
    expect(e.cause).toBeInstanceOf(TypeError);
  });

  it('streamed changes carry an xid only from protocol 2 on', () => {
    const start = bytes('S', [900, 4], [1, 1]);
    const withXid = bytes('I', [900, 4], [16384, 4], 'N', [1, 2], 'n');
    const v2 = createPgoutputDecoder({ protocolVersion: 2 });
    expect(v2.decode(start)).toEqual({ tag: 'stream_start', xid: 900, firstSegment: true });
    expect(v2.inStream).toBe(true);
    expect(v2.decode(withXid)).toEqual({ tag: 'insert', xid: 900, relationOid: 16384, newTuple: [null] });
    expect(v2.decode(bytes('E'))).toEqual({ tag: 'stream_stop' });
    expect(v2.inStream).toBe(false);
    // Outside the block the same bytes are misread (900 taken as the OID) and rejected.
    expect(() => v2.decode(withXid)).toThrow(PgoutputDecodeError);

    const v1 = createPgoutputDecoder({ protocolVersion: 1 });
    v1.decode(start);
    expect(v1.decode(bytes('I', [16384, 4], 'N', [1, 2], 'n'))).toMatchObject({ xid: undefined, relationOid: 16384 });
  });

  it('a rejected Stream Start does not enter the stream block', () => {
    const d = createPgoutputDecoder({ protocolVersion: 2 });
    expect(() => d.decode(bytes('S', [900, 4]))).toThrow(PgoutputDecodeError);
    expect(d.inStream).toBe(false);
  });

  it.each([0, 5, 1.5, NaN])('refuses protocol version %s', (v) => {
    expect(() => createPgoutputDecoder({ protocolVersion: v })).toThrow(/unsupported pgoutput protocol version/);
  });

  it('OIDs and xids are unsigned', () => {
    const msg = decodePgoutputMessage(bytes('B', [1, 8], [0, 8], [0xfffffffe, 4]), { protocolVersion: 1, inStream: false });
    expect(msg).toEqual({ tag: 'begin', finalLsn: 1n, commitTimeUs: 0n, xid: 0xfffffffe });
  });
});
