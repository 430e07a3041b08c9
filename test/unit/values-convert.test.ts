/**
 * Every value case recorded from a real server (scripts/capture-values.ts): the text
 * Postgres printed under the pinned settings must convert to the hand-written JSON.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { textToJson } from '../../src/values/convert.ts';
import { builtinType } from '../../src/values/builtin.ts';
import { describeCatalogType, type PgTypeRow } from '../../src/values/catalog.ts';
import { PINNED_OUTPUT_SETTINGS } from '../../src/values/session.ts';
import type { TypeInfo } from '../../src/values/types.ts';

interface Fixture {
  settings: Record<string, string>;
  types: PgTypeRow[];
  cases: Array<{ name: string; sql: string; oid: number; text: string; expected: string }>;
}

const fixture: Fixture = JSON.parse(fs.readFileSync(new URL('../fixtures/values/cases.json', import.meta.url), 'utf8'));
const rows = new Map(fixture.types.map((t) => [t.oid, t]));
const typeOf = (oid: number): TypeInfo => builtinType(oid) ?? describeCatalogType(oid, (o) => rows.get(o));

describe('textToJson over the captured cases', () => {
  it('was captured under the current pinned settings', () => {
    expect(fixture.settings).toEqual(PINNED_OUTPUT_SETTINGS);
  });

  it.each(fixture.cases.map((k) => [k.name, k] as const))('%s', (_, k) => {
    const json = textToJson(k.text, typeOf(k.oid));
    expect(json).toBe(k.expected);
    // Always valid JSON on its own.
    const value = JSON.parse(json);
    // Numbers are published with exactly the digits Postgres printed.
    if (typeof value === 'number') expect(json).toBe(k.text);
  });

  it('covers every kind of value', () => {
    const kinds = new Set(fixture.cases.map((k) => typeOf(k.oid).kind));
    const elementKinds = new Set(fixture.cases.map((k) => typeOf(k.oid).element?.kind).filter(Boolean));
    for (const kind of ['bool', 'int', 'float', 'numeric', 'money', 'string', 'json', 'jsonb', 'bytea', 'date', 'timestamp', 'timestamptz', 'interval', 'time', 'array', 'other']) {
      expect(kinds, kind).toContain(kind);
      if (kind !== 'array') expect(elementKinds, `array of ${kind}`).toContain(kind);
    }
  });
});

describe('textToJson rejects text the pinned settings never produce', () => {
  const t = (oid: number) => builtinType(oid)!;
  it.each([
    ['bool', 16, 'true', /bool .*"true".*expected 't' or 'f'/],
    ['int4 with leading zero', 23, '007', /int4 .*not an integer/],
    ['int8 empty', 20, '', /int8 .*not an integer/],
    ['float8 with leading dot', 701, '.5', /float8 .*not a number/],
    ['float8 inf', 701, 'inf', /float8 .*not a number/],
    ['numeric garbage', 1700, '1,5', /numeric .*not a number/],
    ['money in another locale', 790, '1.234,50 €', /money .*lc_monetary=C/],
    ['money without digits', 790, '$', /money .*no digits/],
    ['bytea escape format', 17, 'abc\\000', /bytea .*bytea_output=hex/],
    ['bytea odd hex', 17, '\\x0a0', /bytea .*bad hex/],
    ['bytea bad hex', 17, '\\xzz', /bytea .*bad hex/],
    ['date in US style', 1082, '02/29/2024', /date .*DateStyle=ISO/],
    ['timestamp in Postgres style', 1114, 'Thu Feb 29 13:45:00 2024', /timestamp .*DateStyle=ISO/],
    ['timestamptz in another zone', 1184, '2024-02-29 13:45:00+01', /timestamptz .*TimeZone=UTC/],
    ['timestamptz trailing text', 1184, '2024-02-29 13:45:00+00 XX', /timestamptz .*trailing/],
    ['interval in postgres style', 1186, '1 mon', /interval .*IntervalStyle=iso_8601/],
    ['time garbage', 1083, '1pm', /time .*not a time/],
  ])('%s', (_, oid, text, message) => {
    expect(() => textToJson(text, t(oid))).toThrow(message);
  });

  it('shows only the start of a long value', () => {
    const err = (() => {
      try {
        textToJson('x'.repeat(10_000), builtinType(23)!);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err!.message.length).toBeLessThan(200);
  });
});
