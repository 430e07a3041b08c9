import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtures, startRig, startServers, type Rig, type Servers } from '../fixtures/gateway/setup.ts';

describe('gateway mutations', () => {
  let s: Servers;
  let rig: Rig;
  beforeAll(async () => {
    s = await startServers();
    rig = await startRig(s, { gateway: { validatorsDir: path.join(fixtures, 'validators') } });
  });
  afterAll(async () => {
    await rig?.close();
    await s?.destroy();
  });

  it('insert with returning and nested relationships', async () => {
    const r = await rig.gql(`mutation { insert_orders(objects: [{customer_id: 2, qty: 7, price: "1.10", big: "9223372036854775807", meta: {k: [1, "x"]}, data: "AAE=", tags: ["a", "b,c"]}, {customer_id: 2, qty: 8}]) {
      affected_rows returning { id qty price big meta data tags customer { name } }
    } }`);
    expect(r.body.errors).toBeUndefined();
    const ins = r.body.data.insert_orders;
    expect(ins.affected_rows).toBe(2);
    expect(ins.returning[0]).toMatchObject({ qty: 7, price: '1.1000', big: '9223372036854775807', meta: { k: [1, 'x'] }, data: 'AAE=', tags: ['a', 'b,c'], customer: { name: 'Bob' } });
    const [row] = await rig.sql<{ big: string }>('SELECT big::text FROM orders WHERE id = $1', [ins.returning[0].id]);
    expect(row.big).toBe('9223372036854775807');
  });

  it('insert_one with on_conflict update and do nothing', async () => {
    const up = await rig.gql(`mutation { insert_items_one(object: {order_id: 1, sku: "A", id: 1}, on_conflict: {constraint: items_pkey, update_columns: [sku]}) { id sku } }`);
    expect(up.body.errors).toBeUndefined();
    expect(up.body.data.insert_items_one).toEqual({ id: 1, sku: 'A' });
    const none = await rig.gql(`mutation { insert_items(objects: [{order_id: 1, sku: "A"}], on_conflict: {constraint: items_sku_key, update_columns: []}) { affected_rows } }`);
    expect(none.body.data.insert_items.affected_rows).toBe(0);
  });

  it('update with _set and _inc, update_by_pk', async () => {
    const r = await rig.gql(`mutation {
      update_orders(where: {customer_id: {_eq: 1}}, _inc: {qty: 1}, _set: {note: "bumped"}) { affected_rows returning { id qty note } }
      update_orders_by_pk(pk_columns: {id: 3}, _set: {price: "0.0001"}) { id price }
    }`);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.update_orders.affected_rows).toBe(2);
    expect(r.body.data.update_orders.returning.map((x: { qty: number }) => x.qty).sort((a: number, b: number) => a - b)).toEqual([4, 13]);
    expect(r.body.data.update_orders_by_pk).toEqual({ id: '3', price: '0.0001' });
  });

  it('delete and delete_by_pk', async () => {
    await rig.sql(`INSERT INTO items (id, order_id, sku) VALUES (100, 4, 'X'), (101, 4, 'Y')`);
    const r = await rig.gql(`mutation { delete_items(where: {sku: {_in: ["X"]}}) { affected_rows returning { id } } delete_items_by_pk(id: 101) { id sku } }`);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.delete_items).toEqual({ affected_rows: 1, returning: [{ id: 100 }] });
    expect(r.body.data.delete_items_by_pk).toEqual({ id: 101, sku: 'Y' });
    const again = await rig.gql('mutation { delete_items_by_pk(id: 101) { id } }');
    expect(again.body.data.delete_items_by_pk).toBeNull();
  });

  it('one transaction per request: a failing field rolls back the earlier ones', async () => {
    const r = await rig.gql(`mutation {
      a: insert_items_one(object: {order_id: 2, sku: "TX1"}) { id }
      b: insert_items_one(object: {order_id: 999999, sku: "TX2"}) { id }
    }`);
    expect(r.body.errors?.[0].extensions?.code).toBe('constraint-violation');
    expect(r.body.data).toBeNull();
    const rows = await rig.sql(`SELECT * FROM items WHERE sku LIKE 'TX%'`);
    expect(rows).toHaveLength(0);
  });

  it('validators reject with the message the client sees', async () => {
    const r = await rig.gql('mutation { insert_customers_one(object: {name: "Dee", email: "nope"}) { id } }');
    expect(r.body.errors?.[0].message).toBe('email must contain @');
    expect(r.body.errors?.[0].extensions?.code).toBe('validation-failed');
    expect(await rig.sql(`SELECT * FROM customers WHERE name = 'Dee'`)).toHaveLength(0);
    const d = await rig.gql('mutation { delete_customers_by_pk(id: 1) { id } }');
    expect(d.body.errors?.[0].message).toBe('customer 1 is protected');
    const u = await rig.gql('mutation { update_customers(where: {id: {_eq: 3}}, _set: {name: ""}) { affected_rows } }');
    expect(u.body.errors?.[0].message).toBe('name must not be empty');
  });

  it('validators amend a write', async () => {
    const r = await rig.gql('mutation { insert_customers_one(object: {name: "  Eve ", email: "EVE@Example.COM"}) { id name email } }');
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.insert_customers_one).toMatchObject({ name: 'Eve', email: 'eve@example.com' });
    const u = await rig.gql('mutation { update_customers(where: {name: {_eq: "Eve"}}, _set: {name: "eve"}) { returning { name } } }');
    expect(u.body.data.update_customers.returning).toEqual([{ name: 'EVE' }]);
  });

  it('parameterized values: quotes and SQL in data are data', async () => {
    const evil = `x'); DROP TABLE orders; --`;
    const r = await rig.gql('mutation($n: String) { insert_orders_one(object: {customer_id: 1, qty: 1, note: $n}) { note } }', { n: evil });
    expect(r.body.data.insert_orders_one.note).toBe(evil);
    expect((await rig.sql('SELECT count(*)::int AS n FROM orders'))[0].n).toBeGreaterThan(0);
  });
});
