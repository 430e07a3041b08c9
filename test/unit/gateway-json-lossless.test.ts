import { describe, expect, it } from 'vitest';
import { JsonNumber, exactNumber, numberEnd, parseLosslessJson, stringifyLossless } from '../../src/gateway/json.ts';

describe('parseLosslessJson', () => {
  const long = '1' + '0'.repeat(400);
  it('reads numbers of any length (1e400 as jsonb prints it)', () => {
    expect(parseLosslessJson(`{"e" : ${long}, "x" : [${long}]}`)).toEqual({ e: long, x: [long] });
    expect(numberEnd(`${long},`, 0)).toBe(401);
    expect(numberEnd('-1.5e-3]', 0)).toBe(7);
    expect(numberEnd('x', 0)).toBe(0);
  });
  it('exact: numbers a double would not print back as written are JsonNumbers, the rest plain numbers', () => {
    const v = parseLosslessJson(`{"a": ${long}, "b": 12345678901234567890, "c": 1.50, "d": 0.1, "e": -0, "f": 1e+100, "g": 3.14159265358979323846, "s": "1.50"}`, true) as Record<string, unknown>;
    expect(v.a).toEqual(new JsonNumber(long));
    expect(v.b).toEqual(new JsonNumber('12345678901234567890'));
    expect(v.c).toEqual(new JsonNumber('1.50'));
    expect(v.d).toBe(0.1);
    expect(v.e).toEqual(new JsonNumber('-0'));
    expect(v.f).toBe(1e100);
    expect(v.g).toEqual(new JsonNumber('3.14159265358979323846'));
    expect(v.s).toBe('1.50');
    expect(parseLosslessJson('{"a" : [1, 2.5, "x"]}', true)).toEqual({ a: [1, 2.5, 'x'] });
  });
  it('without exact, big integers are strings as before', () => {
    expect(parseLosslessJson('{"n": 9007199254740993, "m": 1.50}')).toEqual({ n: '9007199254740993', m: 1.5 });
  });
});

describe('stringifyLossless', () => {
  it('writes JsonNumbers as their tokens, everything else as JSON.stringify', () => {
    const text = '{"a":12345678901234567890,"b":[1.50,0.1,null,"s\\u0000t"],"c":{"d":1e400},"e":"x"}';
    const v = parseLosslessJson(text, true);
    expect(stringifyLossless(v)).toBe(text.replace('1e400', '1e400'));
    const plain = { a: 1, b: 'é"\\', c: [true, null], d: new Date(0) };
    expect(stringifyLossless(plain)).toBe(JSON.stringify(plain));
    expect(JSON.stringify({ n: new JsonNumber('1.50') })).toBe('{"n":1.5}'); // plain JSON.stringify: nearest double
  });
  it('a string cannot pose as a number', () => {
    const v = { s: '\u0000walnats-number-abc:123', n: new JsonNumber('1.50') };
    expect(JSON.parse(stringifyLossless(v)).s).toBe(v.s);
  });
  it('exactNumber keeps the token when a double would change it', () => {
    expect(exactNumber('7')).toBe(7);
    expect(exactNumber('0.10000000000000000000001')).toEqual(new JsonNumber('0.10000000000000000000001'));
  });
});
