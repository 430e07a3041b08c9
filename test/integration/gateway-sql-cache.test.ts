/**
 * The compiled-statement cache of raw reads (src/gateway/sqlcache.ts): a repeated document only
 * binds its values again, each caller's session values included; variables that change the
 * SQL text get entries of their own (or are compiled every time); a schema reload drops it all.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures, TEST_JWT_SECRET, useRig, userJwt } from '../fixtures/gateway/setup.ts';

const SECRET = TEST_JWT_SECRET;
const token = userJwt;

describe('gateway compiled-statement cache', () => {
  const { rig } = useRig({ gateway: { adminSecret: 'adm1n', jwt: { secret: SECRET }, permissions: path.join(fixtures, 'permissions.yaml') } });
  const admin = { 'x-walnats-admin-secret': 'adm1n' };

  const post = async (query: string, variables?: Record<string, unknown>, headers: Record<string, string> = admin) => {
    const { delta, ...r } = await rig.gqlCounting(query, variables, headers);
    return { ...r, raw: delta.rawReads, hits: delta.cachedStatementHits, added: delta.cachedStatements };
  };
  type Order = { id: string; customer_id: number; qty: number };

  it('a cached query re-binds the caller\'s session variables (two users, same document, different rows)', async () => {
    const q = 'query($m: Int!) { orders(where: {qty: {_gt: $m}}, order_by: {id: asc}) { id customer_id qty } }';
    const u1 = await post(q, { m: 1 }, { authorization: `Bearer ${await token(1)}` });
    expect(u1.added).toBe(1);
    expect(u1.hits).toBe(0);
    const u2 = await post(q, { m: 1 }, { authorization: `Bearer ${await token(2)}` });
    const u1b = await post(q, { m: 10 }, { authorization: `Bearer ${await token(1)}` });
    const u3 = await post(q, { m: 1 }, { authorization: `Bearer ${await token(3)}` });
    for (const r of [u1, u2, u1b, u3]) {
      expect(r.body.errors).toBeUndefined();
      expect(r.raw).toBe(1);
    }
    for (const r of [u2, u1b, u3]) expect([r.hits, r.added]).toEqual([1, 0]); // one statement for all of them
    expect(u1.body.data.orders.map((o: Order) => [o.customer_id, o.qty])).toEqual([[1, 3], [1, 12]]);
    expect(u2.body.data.orders.map((o: Order) => [o.customer_id, o.qty])).toEqual([[2, 5]]);
    expect(u1b.body.data.orders.map((o: Order) => [o.customer_id, o.qty])).toEqual([[1, 12]]); // the variable re-bound too
    expect(u3.body.data.orders.map((o: Order) => [o.customer_id, o.qty])).toEqual([[3, 20]]);
    // The admin role has a statement of its own (no row filter).
    const all = await post(q, { m: 1 });
    expect(all.added).toBe(1);
    expect(all.body.data.orders).toHaveLength(4);
  });

  it('variables that change the SQL shape (null vs value) get separate entries', async () => {
    const q = 'query($n: String) { orders(where: {note: {_eq: $n}}, order_by: {id: asc}) { id note } }';
    const ids = (r: { body: { data: { orders: Array<{ id: string }> } } }) => r.body.data.orders.map((o) => o.id);
    const none = await post(q, { n: null });
    expect(ids(none)).toEqual(['4']); // IS NULL
    expect(none.added).toBe(1);
    const first = await post(q, { n: 'first' });
    expect(ids(first)).toEqual(['1']);
    expect(first.added).toBe(1); // another shape: = $1
    const third = await post(q, { n: 'third' });
    expect(ids(third)).toEqual(['3']);
    expect([third.hits, third.added]).toEqual([1, 0]);
    const absent = await post(q, {});
    expect(ids(absent)).toEqual(['1', '2', '3', '4']); // no filter at all
    expect(absent.added).toBe(1);
    const noneAgain = await post(q, { n: null });
    expect(ids(noneAgain)).toEqual(['4']);
    expect(noneAgain.hits).toBe(1);
    // A limit is written into the text: every value is right (keyed or compiled every time).
    const lq = 'query($l: Int) { orders(order_by: {id: asc}, limit: $l) { id } }';
    for (const l of [1, 2, 3, 1]) expect((await post(lq, { l })).body.data.orders).toHaveLength(l);
    // So are booleans (@include) and an input object given as a whole variable.
    const iq = 'query($b: Boolean!) { orders(order_by: {id: asc}, limit: 1) { id note @include(if: $b) } }';
    expect((await post(iq, { b: true })).body.data.orders).toEqual([{ id: '1', note: 'first' }]);
    expect((await post(iq, { b: false })).body.data.orders).toEqual([{ id: '1' }]);
    const wq = 'query($w: orders_bool_exp) { orders(where: $w, order_by: {id: asc}) { id } }';
    expect(ids(await post(wq, { w: { qty: { _gt: 10 } } }))).toEqual(['2', '4']);
    expect(ids(await post(wq, { w: { customer_id: { _eq: 2 } } }))).toEqual(['3']);
    expect(ids(await post(wq, { w: { qty: { _gt: 4 } } }))).toEqual(['2', '3', '4']);
    // LIKE patterns: never mistaken for one another.
    const like = 'query($p: String!) { orders(where: {note: {_like: $p}}, order_by: {id: asc}) { id } }';
    expect(ids(await post(like, { p: 'f%' }))).toEqual(['1']);
    expect(ids(await post(like, { p: '%d' }))).toEqual(['2', '3']);
  });

  it('a schema reload drops cached statements', async () => {
    const q = 'query($c: Int!) { customers(where: {id: {_eq: $c}}) { id name } }';
    await post(q, { c: 1 });
    const hit = await post(q, { c: 2 });
    expect(hit.hits).toBe(1);
    expect(rig.gw.stats().cachedStatements).toBeGreaterThan(0);
    await rig.sql('ALTER TABLE customers ADD COLUMN tmp2 text');
    try {
      expect(await rig.gw.refresh()).toBe(true);
      expect(rig.gw.stats().cachedStatements).toBe(0);
      const after = await post(q, { c: 1 });
      expect(after.hits).toBe(0);
      expect(after.added).toBe(1);
      expect(after.body.data.customers).toHaveLength(1);
    } finally {
      await rig.sql('ALTER TABLE customers DROP COLUMN tmp2');
      await rig.gw.refresh();
    }
  });
});
