/**
 * Array literal parsing beyond what the captured cases show: array_in's leniency
 * (whitespace, escapes in unquoted elements) and clear errors for malformed literals.
 */
import { describe, expect, it } from 'vitest';
import { textToJson } from '../../src/values/convert.ts';
import { builtinType } from '../../src/values/builtin.ts';
import type { TypeInfo } from '../../src/values/types.ts';

const INT4_ARRAY = builtinType(1007)!;
const TEXT_ARRAY = builtinType(1009)!;
const INT8_ARRAY = builtinType(1016)!;

describe('array literals', () => {
  it.each([
    ['whitespace around elements and braces', INT4_ARRAY, ' { 1 , 2 } ', '[1,2]'],
    ['unquoted NULL in any case', INT4_ARRAY, '{null,Null,NULL}', '[null,null,null]'],
    ['escaped NULL is a string', TEXT_ARRAY, '{\\NULL}', '["NULL"]'],
    ['escapes in unquoted elements', TEXT_ARRAY, '{a\\,b,c\\"d}', '["a,b","c\\"d"]'],
    ['escaped trailing blank is kept', TEXT_ARRAY, '{a\\ }', '["a "]'],
    ['blanks inside unquoted elements are kept', TEXT_ARRAY, '{a b}', '["a b"]'],
    ['quoted element with escaped quote and backslash', TEXT_ARRAY, '{"\\"\\\\"}', '["\\"\\\\"]'],
    ['surrogate pairs survive', TEXT_ARRAY, '{"😀",😀}', '["😀","😀"]'],
    ['bounds of 1 are plain arrays', INT4_ARRAY, '[1:2]={1,2}', '[1,2]'],
    ['int8 digits beyond 2^53', INT8_ARRAY, '{-9223372036854775808}', '[-9223372036854775808]'],
  ])('%s', (_, type, text, json) => {
    expect(textToJson(text, type)).toBe(json);
  });

  it('uses the delimiter of the TypeInfo', () => {
    const boxes = builtinType(1020)!;
    expect(boxes.delimiter).toBe(';');
    expect(textToJson('{(1,1),(0,0);(2,2),(1,1)}', boxes)).toBe('["(1,1),(0,0)","(2,2),(1,1)"]');
  });

  it('converts nested array elements (arrays of a domain over an array)', () => {
    const domainArray: TypeInfo = { oid: 1, name: 'intlist', kind: 'array', element: builtinType(23), delimiter: ',' };
    const outer: TypeInfo = { oid: 2, name: '_intlist', kind: 'array', element: domainArray, delimiter: ',' };
    expect(textToJson('{"{1,2}",NULL,"[0:0]={3}"}', outer)).toBe('[[1,2],null,{"lower_bounds":[0],"values":[3]}]');
  });
});

describe('malformed array literals', () => {
  it.each([
    ['missing braces', INT4_ARRAY, '1,2', /_int4 .*"1,2".*expected '\{'/],
    ['unterminated', INT4_ARRAY, '{1,2', /_int4 .*unterminated array/],
    ['unterminated quote', TEXT_ARRAY, '{"abc}', /_text .*unterminated quoted element/],
    ['text after the end', INT4_ARRAY, '{1}x', /after the closing brace/],
    ['empty element', INT4_ARRAY, '{1,,2}', /empty unquoted element/],
    ['trailing delimiter', INT4_ARRAY, '{1,}', /empty unquoted element/],
    ['stray quote', TEXT_ARRAY, '{a"b"}', /unexpected '"'/],
    ['ragged dimensions', INT4_ARRAY, '{{1,2},{3}}', /sub-arrays of different lengths/],
    ['mixed depth', INT4_ARRAY, '{{1},2}', /element where a sub-array was expected/],
    ['mixed depth the other way', INT4_ARRAY, '{1,{2}}', /sub-array where an element was expected/],
    ['empty sub-array', INT4_ARRAY, '{{},{}}', /empty sub-array/],
    ['bounds without =', INT4_ARRAY, '[0:1]{1,2}', /expected '='/],
    ['bounds with wrong dimension count', INT4_ARRAY, '[0:1]={{1},{2}}', /decoration gives 1 dimensions, the value has 2/],
    ['bounds with wrong length', INT4_ARRAY, '[0:2]={1,2}', /dimension 1 does not match its bounds/],
    ['bad bound', INT4_ARRAY, '[a:1]={1}', /expected an integer/],
    ['bad element', INT4_ARRAY, '{1,x}', /_int4 .*element 2: .*int4 .*"x".*not an integer/],
  ])('%s', (_, type, text, message) => {
    expect(() => textToJson(text, type)).toThrow(message);
  });

  it('keeps the element error as the cause', () => {
    try {
      textToJson('{1,x}', INT4_ARRAY);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).cause).toBeInstanceOf(Error);
      expect(((err as Error).cause as Error).message).toMatch(/int4/);
    }
  });

  it('rejects an array TypeInfo without element type', () => {
    expect(() => textToJson('{1}', { oid: 9, name: 'broken', kind: 'array' })).toThrow(/broken .*no element type/);
  });
});
