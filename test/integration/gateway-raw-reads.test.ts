/**
 * Queries answered from Postgres's JSON text without graphql-js execution (engine.rawQuery),
 * and read statements prepared by name: same bodies, same permissions, same errors, and
 * correct across schema reloads.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures, TEST_JWT_SECRET, useRig, userJwt } from '../fixtures/gateway/setup.ts';

const SECRET = TEST_JWT_SECRET;
const token = userJwt;

describe('gateway raw reads and prepared statements', () => {
  const { rig } = useRig({ gateway: { adminSecret: 'adm1n', jwt: { secret: SECRET }, permissions: path.join(fixtures, 'permissions.yaml') } });
  const admin = { 'x-walnats-admin-secret': 'adm1n' };

  /** The body as text, and how many statements and raw reads the request took. */
  const post = async (query: string, variables?: Record<string, unknown>, headers: Record<string, string> = admin) => {
    const { delta, ...r } = await rig.gqlCounting(query, variables, headers);
    return { ...r, statements: delta.statements, raw: delta.rawReads };
  };

  it('a plain query is served raw, byte for byte what graphql-js and JSON.stringify write', async () => {
    await rig.sql(`INSERT INTO customers (id, name, email) VALUES (900, E'q"b\\\\c\\n\\t\\x01 é \u2028 😀 </x>', NULL)`);
    const q = 'query($id: Int!) { customers(where: {id: {_eq: $id}}) { id name email orders_aggregate { aggregate { count } } } orders(order_by: {id: asc}, limit: 2) { id qty price note customer { name } } }';
    const r = await post(q, { id: 900 });
    expect(r.raw).toBe(1);
    expect(r.statements).toBe(1);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.customers).toEqual([{ id: 900, name: 'q"b\\c\n\t\u0001 é \u2028 😀 </x>', email: null, orders_aggregate: { aggregate: { count: 0 } } }]);
    expect(r.body.data.orders).toHaveLength(2);
    expect(r.text).toBe(JSON.stringify(r.body));
    // The same document with __typename goes through graphql-js: the same data.
    const slow = await post(q.replace('{ customers(', '{ __typename customers('), { id: 900 });
    expect(slow.raw).toBe(0);
    const { __typename, ...rest } = slow.body.data;
    expect(__typename).toBe('query_root');
    expect(JSON.stringify({ data: rest })).toBe(r.text);
    await rig.sql('DELETE FROM customers WHERE id = 900');
  });

  it('columns whose scalars reshape Postgres JSON, meta fields and walnats_cursor take the graphql-js path', async () => {
    for (const q of [
      '{ orders(order_by: {id: asc}, limit: 1) { id created_at } }', // timestamptz: Z
      '{ orders(order_by: {id: asc}, limit: 1) { id ratio } }', // float8
      '{ orders(order_by: {id: asc}, limit: 1) { id meta } }', // jsonb: lossless big integers
      '{ orders(order_by: {id: asc}, limit: 1) { id tags } }', // arrays
      '{ orders(order_by: {id: asc}, limit: 1) { __typename id } }',
      '{ orders(order_by: {id: asc}, limit: 1) { id } walnats_cursor }',
    ]) {
      const r = await post(q);
      expect(r.body.errors, q).toBeUndefined();
      expect(r.raw, q).toBe(0);
      expect(r.statements, q).toBe(1); // never twice
    }
    const r = await post('{ orders(order_by: {id: asc}, limit: 1) { id created_at big } }');
    expect(r.body.data.orders[0]).toEqual({ id: '1', created_at: '2024-02-29T12:45:00.123456Z', big: '9007199254740993' });
    const big = await post('{ orders(order_by: {id: asc}, limit: 1) { id big } }'); // int8 is a string of digits: raw
    expect(big.raw).toBe(1);
    expect(big.text).toBe('{"data":{"orders":[{"id":"1","big":"9007199254740993"}]}}');
  });

  it('a served-raw document keeps each caller\'s role: row filters with its session, columns, max_rows', async () => {
    const q = '{ orders(order_by: {id: asc}) { id customer_id qty } }';
    const u1 = await post(q, undefined, { authorization: `Bearer ${await token(1)}` });
    const u2 = await post(q, undefined, { authorization: `Bearer ${await token(2)}` });
    const u1again = await post(q, undefined, { authorization: `Bearer ${await token(1)}` }); // prepared by now
    const all = await post(q);
    for (const r of [u1, u2, u1again, all]) {
      expect(r.body.errors).toBeUndefined();
      expect(r.raw).toBe(1);
    }
    expect(u1.body.data.orders.length).toBeGreaterThan(0);
    expect(u1.body.data.orders.every((o: { customer_id: number }) => o.customer_id === 1)).toBe(true);
    expect(u2.body.data.orders.every((o: { customer_id: number }) => o.customer_id === 2)).toBe(true);
    expect(u1again.text).toBe(u1.text);
    expect(u1.body.data.orders.length).toBeLessThanOrEqual(3); // max_rows of the role
    expect(all.body.data.orders.length).toBeGreaterThan(u1.body.data.orders.length + u2.body.data.orders.length - 1);
    // Column permissions still hold by validation, before anything runs.
    const note = await post('{ orders { id note } }', undefined, { authorization: `Bearer ${await token(1)}` });
    expect(note.body.errors[0].message).toMatch(/Cannot query field "note"/);
    expect(note.statements).toBe(0);
  });

  it('errors are reported as before, and the failing statement runs once', async () => {
    const bad = await post('{ orders(where: {created_at: {_eq: "not a time"}}) { id } }');
    expect(bad.body.data).toBeNull();
    expect(bad.body.errors[0].extensions.code).toBe('data-exception');
    expect(bad.body.errors[0].path).toEqual(['orders']);
    expect(bad.statements).toBe(1);
    const lim = await post('query($n: Int) { orders(limit: $n) { id } }', { n: -1 });
    expect(lim.body.errors[0].message).toMatch(/limit must be a non-negative integer/);
    const vars = await post('query($n: Int!) { orders(limit: $n) { id } }', { n: 'x' });
    expect(vars.body.errors[0].message).toMatch(/\$n/);
    expect(vars.statements).toBe(0);
  });

  it('read statements are prepared from their second use on, and stay correct across a schema reload', async () => {
    const q = '{ customers(order_by: {id: asc}) { id name } }';
    const p0 = rig.gw.stats().preparedStatements;
    const first = await post(q);
    expect(rig.gw.stats().preparedStatements).toBe(p0); // one use: unnamed
    const second = await post(q);
    expect(rig.gw.stats().preparedStatements).toBe(p0 + 1);
    await post(q);
    expect(rig.gw.stats().preparedStatements).toBe(p0 + 1);
    expect(second.text).toBe(first.text);
    // The table changes under the prepared statement (same SQL text): Postgres re-plans it.
    await rig.sql("ALTER TABLE customers ALTER COLUMN name TYPE varchar(80); UPDATE customers SET name = name || '!' WHERE id = 1");
    expect(await rig.gw.refresh()).toBe(true);
    for (let i = 0; i < 3; i++) {
      const r = await post(q);
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.customers[0].name).toMatch(/!$/);
      expect(r.raw).toBe(1);
    }
    // A column that is gone: the new schema refuses it; the rest still reads.
    await rig.sql('ALTER TABLE customers ADD COLUMN tmp text; UPDATE customers SET tmp = \'t\'');
    await rig.gw.refresh();
    const t = '{ customers(order_by: {id: asc}, limit: 1) { id tmp } }';
    expect((await post(t)).body.data.customers).toEqual([{ id: 1, tmp: 't' }]);
    expect((await post(t)).body.data.customers).toEqual([{ id: 1, tmp: 't' }]);
    await rig.sql('ALTER TABLE customers DROP COLUMN tmp');
    await rig.gw.refresh();
    expect((await post(t)).body.errors[0].message).toMatch(/Cannot query field "tmp"/);
    expect((await post(q)).body.errors).toBeUndefined();
    await rig.sql("UPDATE customers SET name = rtrim(name, '!') WHERE id = 1");
  });
});
