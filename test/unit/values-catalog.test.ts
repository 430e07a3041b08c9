/**
 * The built-in table against a real server's pg_type (recorded in cases.json), and the
 * rules that describe catalog types.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { builtinOids, builtinType } from '../../src/values/builtin.ts';
import { describeCatalogType, type PgTypeRow } from '../../src/values/catalog.ts';

interface Fixture {
  builtin_types: Array<{ oid: number; typname: string; typelem: number; typdelim: string }>;
}
const fixture: Fixture = JSON.parse(fs.readFileSync(new URL('../fixtures/values/cases.json', import.meta.url), 'utf8'));
const server = new Map(fixture.builtin_types.map((t) => [t.oid, t]));

describe('builtinType', () => {
  it.each(builtinOids().map((oid) => [builtinType(oid)!.name, oid] as const))('%s (%i) matches pg_type', (_, oid) => {
    const info = builtinType(oid)!;
    const row = server.get(oid);
    expect(row, `pg_type has oid ${oid}`).toBeDefined();
    expect(info.name).toBe(row!.typname);
    if (info.kind === 'array') {
      expect(info.element!.oid).toBe(row!.typelem);
      // array_out separates elements with the element type's typdelim.
      expect(info.delimiter).toBe(server.get(info.element!.oid)!.typdelim);
    }
  });

  it('knows the types of the DESIGN table and their arrays', () => {
    const kinds: Record<number, string> = {
      16: 'bool', 21: 'int', 23: 'int', 20: 'int', 26: 'int', 700: 'float', 701: 'float', 1700: 'numeric',
      790: 'money', 25: 'string', 1043: 'string', 1042: 'string', 18: 'string', 19: 'string', 2950: 'string',
      114: 'json', 3802: 'jsonb', 17: 'bytea', 1082: 'date', 1114: 'timestamp', 1184: 'timestamptz',
      1186: 'interval', 1083: 'time', 1266: 'time', 869: 'string', 650: 'string', 829: 'string', 774: 'string',
    };
    const arrays = [1000, 1005, 1007, 1016, 1021, 1022, 1231, 791, 1009, 1015, 1014, 2951, 199, 3807, 1001, 1182, 1115, 1185, 1187, 1183, 1270, 1041, 651, 1040];
    for (const [oid, kind] of Object.entries(kinds)) expect(builtinType(Number(oid))?.kind, oid).toBe(kind);
    for (const oid of arrays) expect(builtinType(oid)?.kind, String(oid)).toBe('array');
    expect(builtinType(16384)).toBeUndefined();
  });
});

describe('describeCatalogType', () => {
  const row = (r: Partial<PgTypeRow> & Pick<PgTypeRow, 'oid' | 'typname'>): PgTypeRow => ({
    nspname: 'public', typtype: 'b', typcategory: 'U', typelem: 0, typdelim: ',', typbasetype: 0, ...r,
  });
  const catalog = new Map<number, PgTypeRow>(
    [
      row({ oid: 100001, typname: 'mood', typtype: 'e', typcategory: 'E' }),
      row({ oid: 100002, typname: '_mood', typcategory: 'A', typelem: 100001 }),
      row({ oid: 100003, typname: 'posint', typtype: 'd', typcategory: 'N', typbasetype: 23 }),
      row({ oid: 100004, typname: 'small', typtype: 'd', typcategory: 'N', typbasetype: 100003 }),
      row({ oid: 100005, typname: 'intlist', typtype: 'd', typcategory: 'A', typbasetype: 1007 }),
      row({ oid: 100006, typname: 'citext', nspname: 'ext', typcategory: 'S' }),
      row({ oid: 100007, typname: '_citext', nspname: 'ext', typcategory: 'A', typelem: 100006 }),
      row({ oid: 100008, typname: 'hstore' }),
      row({ oid: 100009, typname: 'pair', typtype: 'c', typcategory: 'C' }),
      row({ oid: 100010, typname: 'floatrange', typtype: 'r', typcategory: 'R' }),
      row({ oid: 100011, typname: 'boxd', typtype: 'd', typcategory: 'G', typbasetype: 603, typdelim: ';' }),
      row({ oid: 100012, typname: '_boxd', typcategory: 'A', typelem: 100011, typdelim: ';' }),
      row({ oid: 100013, typname: 'over_unknown', typtype: 'd', typbasetype: 999999 }),
      row({ oid: 100014, typname: 'over_range', typtype: 'd', typbasetype: 100010 }),
      row({ oid: 100015, typname: 'vec', typcategory: 'A', typelem: 23 }), // int2vector-like
      row({ oid: 100016, typname: '_posint', typcategory: 'A', typelem: 100003 }),
      row({ oid: 100017, typname: 'status', nspname: 'app', typtype: 'e', typcategory: 'E' }),
    ].map((r) => [r.oid, r]),
  );
  const describeOid = (oid: number) => describeCatalogType(oid, (o) => catalog.get(o));

  it('prefers the built-in table', () => {
    expect(describeOid(23)).toBe(builtinType(23));
  });
  it('enums are strings, named with their schema when not pg_catalog', () => {
    expect(describeOid(100001)).toEqual({ oid: 100001, name: 'public.mood', kind: 'string' });
    expect(describeOid(100017).name).toBe('app.status');
  });
  it('arrays of enums', () => {
    expect(describeOid(100002)).toMatchObject({ kind: 'array', delimiter: ',', element: { kind: 'string' } });
  });
  it('domains take their base kind, recursively', () => {
    expect(describeOid(100003)).toEqual({ oid: 100003, name: 'public.posint', kind: 'int' });
    expect(describeOid(100004)).toEqual({ oid: 100004, name: 'public.small', kind: 'int' });
  });
  it('a domain over an array is an array', () => {
    expect(describeOid(100005)).toMatchObject({ kind: 'array', element: { oid: 23 }, delimiter: ',' });
  });
  it('arrays of domains', () => {
    expect(describeOid(100016)).toMatchObject({ kind: 'array', element: { kind: 'int', name: 'public.posint' } });
  });
  it('citext by name, in any schema, and its arrays', () => {
    expect(describeOid(100006)).toEqual({ oid: 100006, name: 'ext.citext', kind: 'string' });
    expect(describeOid(100007)).toMatchObject({ kind: 'array', element: { kind: 'string' } });
  });
  it('hstore, composites, ranges are other', () => {
    for (const oid of [100008, 100009, 100010]) expect(describeOid(oid).kind).toBe('other');
  });
  it('domains over unknown or other types are other', () => {
    expect(describeOid(100013).kind).toBe('other');
    expect(describeOid(100014).kind).toBe('other');
  });
  it("arrays use the element type's delimiter", () => {
    expect(describeOid(100012)).toMatchObject({ kind: 'array', delimiter: ';', element: { kind: 'other' } });
  });
  it('category A without the array name is not an array', () => {
    expect(describeOid(100015).kind).toBe('other');
  });
  it('unknown OIDs are other', () => {
    expect(describeOid(424242)).toEqual({ oid: 424242, name: 'oid 424242', kind: 'other' });
  });
  it('a cycle ends as other instead of overflowing the stack', () => {
    const loop = row({ oid: 1, typname: 'loop', typtype: 'd', typbasetype: 1 });
    expect(describeCatalogType(1, () => loop).kind).toBe('other');
  });
});
