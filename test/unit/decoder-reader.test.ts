import { describe, expect, it } from 'vitest';
import { PgoutputDecodeError, Reader, describeByte } from '../../src/decoder/reader.ts';
import { PG_EPOCH_UNIX_US, pgTimeToUnixMs, unixMsToPgTime } from '../../src/decoder/time.ts';

describe('Reader', () => {
  it('reads big-endian integers, signed and unsigned', () => {
    const r = new Reader();
    r.reset(Uint8Array.of(0x42, 0xff, 0x01, 0x02, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xfe,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 1);
    expect(r.uint8()).toBe(0xff);
    expect(r.uint16()).toBe(0x0102);
    expect(r.int32()).toBe(-2);
    expect(r.uint32()).toBe(0xfffffffe);
    expect(r.uint64()).toBe(0xffffffffffffffffn);
    expect(r.int64()).toBe(-1n);
    expect(r.remaining).toBe(0);
    r.end();
  });

  it('reads C strings and counted text as UTF-8', () => {
    const r = new Reader();
    const enc = new TextEncoder();
    r.reset(Uint8Array.from([0x4f, ...enc.encode('schéma'), 0, ...enc.encode('☃x')]), 1);
    expect(r.cstring()).toBe('schéma');
    expect(r.text(3)).toBe('☃');
    expect(r.text(1)).toBe('x');
  });

  // A Node Buffer's slice() is a view (node-postgres passes Buffers): copies must be real either way.
  it.each([
    ['a Uint8Array', (b: number[]) => Uint8Array.from(b)],
    ['a Node Buffer', (b: number[]) => Buffer.from(b)],
  ])('copies byte slices of %s', (_kind, make) => {
    const buf = make([0x4d, 1, 2, 3]);
    const r = new Reader();
    r.reset(buf, 1);
    const out = r.bytes(3);
    buf.fill(9);
    expect(Array.from(out)).toEqual([1, 2, 3]);
    expect(out.buffer).not.toBe(buf.buffer);
  });

  // Short ASCII text takes a Latin-1 fast path; it must give exactly what UTF-8 decoding gives,
  // and everything else (non-ASCII, invalid, long) must still go through the validating decoder.
  const reference = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const enc = new TextEncoder();
  const texts: Array<[string, number[]]> = [
    ['empty', []],
    ['digits', [...enc.encode('-9223372036854775808')]],
    ['NUL and control bytes', [0, 1, 9, 10, 13, 31]],
    ['DEL (0x7f), the last ASCII byte', [0x41, 0x7f, 0x42]],
    ['256 ASCII bytes (fast path limit)', Array.from({ length: 256 }, (_, i) => 32 + (i % 95))],
    ['257 ASCII bytes', Array.from({ length: 257 }, (_, i) => 32 + (i % 95))],
    ['ASCII then é at the end', [...enc.encode('cafe'), 0xc3, 0xa9]],
    ['Latin-1 lookalike: 0xe9 alone is not UTF-8', [0x63, 0xe9]],
    ['a BOM at the start is kept', [0xef, 0xbb, 0xbf, 0x41]],
    ['4-byte UTF-8', [...enc.encode('a😀b')]],
  ];
  it.each(texts.flatMap(([name, bytes]) => [
    [name, 'Uint8Array', Uint8Array.from(bytes)],
    [name, 'Buffer view at an offset', Buffer.concat([Buffer.from([7, 7, 7]), Buffer.from(bytes)]).subarray(3)],
  ] as Array<[string, string, Uint8Array]>))('text: %s (%s) decodes as UTF-8 would', (_name, _kind, input) => {
    let want: string | Error;
    try {
      want = reference.decode(input);
    } catch (e) {
      want = e as Error;
    }
    const msg = Uint8Array.from([0x4f, ...input]);
    const reads = [(r: Reader) => r.text(input.length)];
    // as a C string too, where it has no NUL of its own
    if (!input.includes(0)) reads.push((r: Reader) => (r.reset(Uint8Array.from([0x4f, ...input, 0]), 1), r.cstring()));
    for (const read of reads) {
      const r = new Reader();
      r.reset(msg, 1);
      if (want instanceof Error) expect(() => read(r)).toThrow(/not valid UTF-8/);
      else expect(read(r)).toBe(want);
    }
  });

  it('works on a view into a larger buffer', () => {
    const big = Uint8Array.of(0xee, 0xee, 0x42, 0, 0, 0, 7, 0xee);
    const r = new Reader();
    r.reset(big.subarray(2, 7), 1);
    expect(r.uint32()).toBe(7);
    expect(() => r.uint8('flag')).toThrow(/reading flag at offset 5 needs 1 byte\(s\), 0 available/);
  });

  it('reading past the end names the message type, offset, needed and available', () => {
    const r = new Reader();
    r.reset(Uint8Array.of(0x43, 1, 2), 1);
    let err: unknown;
    try {
      r.uint64('commit LSN');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PgoutputDecodeError);
    expect((err as Error).message).toBe("pgoutput message 0x43 'C' truncated: reading commit LSN at offset 1 needs 8 byte(s), 2 available");
    expect(err).toMatchObject({ byte: 0x43, offset: 1 });
  });

  it('trailing bytes are an error', () => {
    const r = new Reader();
    r.reset(Uint8Array.of(0x45, 0), 1);
    expect(() => r.end()).toThrow(/1 unexpected trailing byte/);
  });

  it('describeByte', () => {
    expect(describeByte(0x42)).toBe("0x42 'B'");
    expect(describeByte(0)).toBe('0x00');
    expect(describeByte(0xff)).toBe('0xff');
  });
});

describe('pgoutput time', () => {
  it('converts µs since 2000-01-01 to Unix ms and back', () => {
    expect(pgTimeToUnixMs(0n)).toBe(Date.UTC(2000, 0, 1));
    expect(PG_EPOCH_UNIX_US).toBe(BigInt(Date.UTC(2000, 0, 1)) * 1000n);
    const us = BigInt(Date.UTC(2024, 1, 29, 12, 45)) * 1000n - PG_EPOCH_UNIX_US + 123_456n;
    expect(pgTimeToUnixMs(us)).toBe(Date.UTC(2024, 1, 29, 12, 45) + 123);
    expect(unixMsToPgTime(Date.UTC(2024, 1, 29, 12, 45))).toBe(us - 123_456n);
  });

  it('floors before 1970', () => {
    expect(pgTimeToUnixMs(-PG_EPOCH_UNIX_US - 1n)).toBe(-1);
  });
});
