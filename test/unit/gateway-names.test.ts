import { describe, expect, it } from 'vitest';
import type { Catalog, CatalogTable } from '../../src/gateway/catalog.ts';
import { buildModel, sanitize } from '../../src/gateway/model.ts';
import { parseLosslessJson } from '../../src/gateway/json.ts';
import { cmpDecimal, decodeCursor, encodeCursor, visibleIn } from '../../src/gateway/events.ts';

const col = (name: string, type = 'int4') => ({ name, attnum: 1, type, category: 'N', isArray: false, isEnum: false, sqlType: 'integer', nullable: true, hasDefault: false, generated: false });
const table = (schema: string, name: string, cols = ['id'], extra: Partial<CatalogTable> = {}): CatalogTable => ({
  oid: 1, schema, name, kind: 'table', columns: cols.map((c) => col(c)), primaryKey: ['id'], uniques: [], foreignKeys: [], reads: [], comment: null, ...extra,
});
const catalog = (tables: CatalogTable[]): Catalog => ({ tables, skipped: [], fingerprint: 'x' });

describe('gateway name mapping', () => {
  it('sanitizes invalid GraphQL names deterministically', () => {
    expect(sanitize('order items')).toBe('order_items');
    expect(sanitize('1st')).toBe('_1st');
    expect(sanitize('__x')).toBe('x__x');
    expect(sanitize('größe')).toBe('gr__e');
    expect(sanitize('ok_Name1')).toBe('ok_Name1');
  });

  it('resolves collisions and reports every one', () => {
    const m = buildModel(catalog([
      table('public', 'order'), table('public', 'Order'), table('public', 'query_root'), table('public', 'orders_aggregate'),
      table('public', 'orders'), table('other', 'orders'), table('public', 'other_orders'), table('public', 'uuid'), table('public', 'a b'), table('public', 'a_b'),
    ]), ['public', 'other']);
    const names = Object.fromEntries(m.tables.map((t) => [t.key, t.base]));
    expect(names['public.Order']).toBe('Order');
    expect(names['public.order']).toBe('order_2'); // case-insensitive collision, byte order: 'O' < 'o'
    expect(names['public.query_root']).toBe('query_root_2');
    expect(names['public.uuid']).toBe('uuid_2');
    expect(names['public.orders']).toBe('orders');
    expect(names['public.orders_aggregate']).toBe('orders_aggregate_2'); // `orders` took it for its aggregate field
    expect(names['other.orders']).toBe('other_orders_2');
    expect(names['public.other_orders']).toBe('other_orders');
    expect(names['public.a b']).toBe('a_b');
    expect(names['public.a_b']).toBe('a_b_2');
    expect(m.report.collisions.length).toBeGreaterThanOrEqual(6);
    expect(m.report.mappings.filter((x) => x.kind === 'table')).toHaveLength(7);
    // determinism: same input, same output
    const again = buildModel(catalog([...m.tables.map((t) => t.cat)].reverse()), ['public', 'other']);
    expect(Object.fromEntries(again.tables.map((t) => [t.key, t.base]))).toEqual(names);
  });

  it('maps columns and relationships, renaming clashes', () => {
    const authors = table('public', 'authors', ['id', 'books']);
    const books = table('public', 'books', ['id', 'author_id', 'editor_id', 'author'], {
      foreignKeys: [
        { name: 'books_author_fk', schema: 'public', table: 'books', columns: ['author_id'], refSchema: 'public', refTable: 'authors', refColumns: ['id'] },
        { name: 'books_editor_fk', schema: 'public', table: 'books', columns: ['editor_id'], refSchema: 'public', refTable: 'authors', refColumns: ['id'] },
      ],
    });
    const m = buildModel(catalog([authors, books, table('public', 'odd', ['id', 'x y', 'x_y'])]), ['public']);
    const b = m.byKey.get('public.books')!;
    expect(b.rels.map((r) => r.name)).toEqual(['authors_by_author_id', 'editor']);
    const a = m.byKey.get('public.authors')!;
    expect(a.rels.map((r) => [r.name, r.kind])).toEqual([['books_by_author_id', 'array'], ['books_by_editor_id', 'array']]);
    expect(m.byKey.get('public.odd')!.columns.map((c) => c.gql)).toEqual(['id', 'x_y', 'x_y_2']);
  });
});

describe('gateway helpers', () => {
  it('parses JSON without losing int8 digits', () => {
    expect(parseLosslessJson('{"a":9223372036854775807,"b":[1.5,-9007199254740993],"c":"\\u00e9"}')).toEqual({ a: '9223372036854775807', b: [1.5, '-9007199254740993'], c: 'é' });
  });
  it('compares decimals exactly', () => {
    expect(cmpDecimal('12.50', '12.5')).toBe(0);
    expect(cmpDecimal('9223372036854775807', '9223372036854775806')).toBe(1);
    expect(cmpDecimal('-1.01', '-1.1')).toBe(1);
  });
  it('cursors round-trip and reject garbage', () => {
    const c = { seq: 42, snap: { xmin: 100n, xmax: 105n, xip: [101n, 103n] } };
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
    expect(() => decodeCursor("w1' OR 1=1")).toThrow('invalid cursor');
    expect(() => decodeCursor('abc')).toThrow('invalid cursor');
  });
  it('snapshot visibility of 32-bit xids', () => {
    const snap = { xmin: 100n, xmax: 105n, xip: [101n, 103n] };
    expect(visibleIn(snap, 99n)).toBe(true);
    expect(visibleIn(snap, 101n)).toBe(false);
    expect(visibleIn(snap, 102n)).toBe(true);
    expect(visibleIn(snap, 105n)).toBe(false);
    const wrapped = { xmin: (1n << 32n) + 5n, xmax: (1n << 32n) + 10n, xip: [] };
    expect(visibleIn(wrapped, 7n)).toBe(true);
    expect(visibleIn(wrapped, 12n)).toBe(false);
    expect(visibleIn(wrapped, 4294967290n)).toBe(true); // previous epoch
  });
});
