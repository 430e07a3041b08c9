import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn } from '../../src/lsn.ts';

describe('LSN text', () => {
  it.each([
    ['0/0', 0n],
    ['0/16B3748', 0x16b3748n],
    ['16/B374D848', (0x16n << 32n) | 0xb374d848n],
    ['FFFFFFFF/FFFFFFFF', 0xffffffffffffffffn],
  ])('%s round-trips', (text, value) => {
    expect(parseLsn(text)).toBe(value);
    expect(formatLsn(value)).toBe(text);
  });
  it('accepts lower-case hex as Postgres input does', () => {
    expect(parseLsn('0/16b3748')).toBe(0x16b3748n);
  });
  it.each(['', '0', '0/', 'x/1', '1/2/3', '123456789/0'])('rejects %j', (text) => {
    expect(() => parseLsn(text)).toThrow(/invalid LSN/);
  });
});
