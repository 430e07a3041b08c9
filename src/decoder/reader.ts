/**
 * A cursor over one pgoutput message. All integers are big-endian as on the wire.
 *
 * node-postgres reuses its socket read buffer, so nothing this reader returns may share
 * memory with the input: byte slices are copied, strings are decoded into JS strings.
 * One Reader is reused for every message (`reset`) so the hot path allocates nothing but
 * the values it returns.
 */
import { Buffer } from 'node:buffer';

/**
 * Thrown for anything the decoder cannot turn into a well-formed message: unknown type
 * byte, truncated input, impossible field values, trailing bytes.
 */
export class PgoutputDecodeError extends Error {
  /** The message type byte (first byte of the message), or -1 for an empty message. */
  readonly byte: number;
  /** Offset within the message where decoding failed. */
  readonly offset: number;

  constructor(message: string, byte: number, offset: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PgoutputDecodeError';
    this.byte = byte;
    this.offset = offset;
  }
}

/** `0x42 'B'` — how error messages name a type byte. */
export function describeByte(byte: number): string {
  const hex = '0x' + byte.toString(16).padStart(2, '0');
  return byte >= 0x20 && byte < 0x7f ? `${hex} '${String.fromCharCode(byte)}'` : hex;
}

// fatal: invalid UTF-8 must fail loudly rather than become U+FFFD (values are lossless).
// ignoreBOM: a text value that starts with U+FEFF must keep it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Most values are short ASCII (numbers, dates, keys): for those, Latin-1 decoding gives the
 * same string as UTF-8 and skips TextDecoder's per-call cost (about 40 % of a value's decode
 * time here). Anything with a byte ≥ 0x80, or longer than this, takes TextDecoder, which
 * also validates it.
 */
const ASCII_FAST_MAX = 256;
// Buffer's own Latin-1 slice (what buf.toString('latin1', s, e) calls, without its argument
// checks); where a Node lacks it, short ASCII goes through TextDecoder like the rest.
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: (start: number, end: number) => string }).latin1Slice;

export class Reader {
  private buf: Uint8Array = new Uint8Array(0);
  private view: DataView = new DataView(this.buf.buffer);
  pos = 0;
  /** Type byte of the message being read, for error messages. */
  private type = -1;

  reset(buf: Uint8Array, pos = 0): void {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
    this.type = buf.length > 0 ? buf[0] : -1;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get messageByte(): number {
    return this.type;
  }

  /** An error located at the current position. */
  fail(what: string, cause?: unknown): PgoutputDecodeError {
    const where = this.type >= 0 ? `pgoutput message ${describeByte(this.type)}` : 'empty pgoutput message';
    return new PgoutputDecodeError(
      `${where}: ${what} at offset ${this.pos}`,
      this.type,
      this.pos,
      cause === undefined ? undefined : { cause },
    );
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      const where = this.type >= 0 ? `pgoutput message ${describeByte(this.type)}` : 'empty pgoutput message';
      throw new PgoutputDecodeError(
        `${where} truncated: reading ${what} at offset ${this.pos} needs ${n} byte(s), ${this.buf.length - this.pos} available`,
        this.type,
        this.pos,
      );
    }
  }

  uint8(what = 'int8'): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  uint16(what = 'int16'): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  int32(what = 'int32'): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Unsigned 32-bit: OIDs and xids are unsigned on the wire. */
  uint32(what = 'int32'): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Unsigned 64-bit: LSNs. */
  uint64(what = 'int64'): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v;
  }

  /** Signed 64-bit: timestamps (µs since 2000-01-01, negative before). */
  int64(what = 'int64'): bigint {
    this.need(8, what);
    const v = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return v;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(what = 'string'): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) {
      const where = this.type >= 0 ? `pgoutput message ${describeByte(this.type)}` : 'empty pgoutput message';
      throw new PgoutputDecodeError(
        `${where} truncated: ${what} at offset ${this.pos} has no NUL terminator (${this.buf.length - this.pos} byte(s) available)`,
        this.type,
        this.pos,
      );
    }
    const s = this.utf8(this.pos, end, what);
    this.pos = end + 1;
    return s;
  }

  /** `n` bytes decoded as UTF-8. */
  text(n: number, what = 'text'): string {
    this.need(n, what);
    const s = this.utf8(this.pos, this.pos + n, what);
    this.pos += n;
    return s;
  }

  /**
   * `n` bytes, copied so the result outlives the input buffer. Copied explicitly: on a Node
   * Buffer (what node-postgres passes) `slice` is a view into its reused read buffer.
   */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** Asserts the whole message was consumed: trailing bytes mean we misread its shape. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw this.fail(`${this.buf.length - this.pos} unexpected trailing byte(s)`);
    }
  }

  private utf8(start: number, end: number, what: string): string {
    const b = this.buf;
    if (latin1Slice && end - start <= ASCII_FAST_MAX) {
      let i = start;
      while (i < end && b[i] < 0x80) i++;
      if (i === end) return latin1Slice.call(b, start, end);
    }
    try {
      return utf8.decode(this.buf.subarray(start, end));
    } catch (err) {
      throw this.fail(`${what} is not valid UTF-8`, err);
    }
  }
}
