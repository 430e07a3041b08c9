import { describe, expect, it } from 'vitest';
import { compactJsonText } from '../../src/gateway/json.ts';

describe('compactJsonText', () => {
  it('drops the whitespace Postgres puts between tokens, as JSON.stringify writes the value', () => {
    const pg = '{"orders" : [{"id" : "1", "qty" : 26, "note" : null, "c" : {"a" : true}}, \n {"id" : "2", "qty" : -3, "note" : "x y", "c" : null}], "e" : [], "o" : {}}';
    expect(compactJsonText(pg)).toBe(JSON.stringify(JSON.parse(pg)));
  });
  it('copies strings as they are, escapes and whitespace inside them included', () => {
    const value = { s: 'a "q" \\ b\n\t\u0001\u001f é \u2028 😀 ', t: '  ', u: '\\"' };
    const pg = JSON.stringify(value).replace(/":/g, '" : ').replace(/,"/g, ', "');
    expect(compactJsonText(pg)).toBe(JSON.stringify(value));
  });
  it('gives up on numbers of 10 or more digits (outside strings only)', () => {
    expect(compactJsonText('{"n" : 2147483648}')).toBeUndefined();
    expect(compactJsonText('{"n" : 123456789}')).toBe('{"n":123456789}');
    expect(compactJsonText('{"s" : "12345678901234567890"}')).toBe('{"s":"12345678901234567890"}');
  });
});
