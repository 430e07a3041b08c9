import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures, useRig } from '../fixtures/gateway/setup.ts';

describe('gateway mutations', () => {
  const { rig } = useRig({ gateway: { validatorsDir: path.join(fixtures, 'validators') } });

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

  it('nested insert through an array relationship, two levels deep, in one transaction; returning sees the nested rows', async () => {
    const r = await rig.gql(`mutation { insert_customers_one(object: {name: " Dee ", email: "DEE@example.com", orders: {data: [
      {qty: 1, items: {data: [{sku: "n-a"}, {sku: "n-b"}]}},
      {qty: 2}
    ]}}) { id name email orders(order_by: {qty: asc}) { qty customer_id items(order_by: {sku: asc}) { sku } } } }`);
    expect(r.body.errors).toBeUndefined();
    const c = r.body.data.insert_customers_one;
    expect(c).toMatchObject({ name: 'Dee', email: 'dee@example.com' }); // the validator ran on the nested-insert root too
    expect(c.orders).toEqual([
      { qty: 1, customer_id: c.id, items: [{ sku: 'n-a' }, { sku: 'n-b' }] },
      { qty: 2, customer_id: c.id, items: [] },
    ]);
    const [row] = await rig.sql<{ n: string }>('SELECT count(*)::text AS n FROM items i JOIN orders o ON o.id = i.order_id WHERE o.customer_id = $1', [c.id]);
    expect(row.n).toBe('2');
  });

  it('nested insert through an object relationship: the related row first, its key in the foreign key; affected_rows counts all', async () => {
    const r = await rig.gql(`mutation {
      one: insert_orders_one(object: {qty: 4, customer: {data: {name: "Eve", email: "eve@example.com"}}}) { qty customer { name email } }
      many: insert_orders(objects: [{qty: 5, customer: {data: {name: "Fay", email: "fay@example.com"}}, items: {data: [{sku: "f-1"}]}}, {qty: 6, customer_id: 1}]) {
        affected_rows returning { qty customer { name } items { sku } }
      }
    }`);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.one).toEqual({ qty: 4, customer: { name: 'Eve', email: 'eve@example.com' } });
    expect(r.body.data.many.affected_rows).toBe(4); // customer Fay, her order, its item, and the plain order
    expect(r.body.data.many.returning).toEqual([
      { qty: 5, customer: { name: 'Fay' }, items: [{ sku: 'f-1' }] },
      { qty: 6, customer: { name: 'Ada' }, items: [] },
    ]);
  });

  it('a failing nested row rolls back the whole request', async () => {
    const before = await rig.sql<{ c: string; o: string; i: string }>('SELECT (SELECT count(*) FROM customers)::text c, (SELECT count(*) FROM orders)::text o, (SELECT count(*) FROM items)::text i');
    // the second item repeats (order_id, sku): unique violation after the customer and the order were written
    const dup = await rig.gql(`mutation { insert_customers_one(object: {name: "Gus", email: "gus@example.com", orders: {data: [{qty: 1, items: {data: [{sku: "x"}, {sku: "x"}]}}]}}) { id } }`);
    expect(dup.body.data).toBeNull();
    expect(dup.body.errors[0].extensions.code).toBe('constraint-violation');
    // a validator rejecting the nested customer (no email)
    const bad = await rig.gql(`mutation { insert_orders_one(object: {qty: 9, customer: {data: {name: "Hal"}}}) { id } }`);
    expect(bad.body.data).toBeNull();
    expect(bad.body.errors[0].message).toBe('email must contain @');
    const after = await rig.sql('SELECT (SELECT count(*) FROM customers)::text c, (SELECT count(*) FROM orders)::text o, (SELECT count(*) FROM items)::text i');
    expect(after).toEqual(before);
  });

  it('nested inserts with on_conflict: an existing related row is updated and referred to; skipped, it is an error', async () => {
    const r = await rig.gql(`mutation { insert_orders_one(object: {qty: 12, customer: {data: {id: 1, name: "Ada", email: "Ada.Lovelace@example.com"}, on_conflict: {constraint: customers_pkey, update_columns: [email]}}}) { qty customer { id email } } }`);
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data.insert_orders_one).toEqual({ qty: 12, customer: { id: 1, email: 'ada.lovelace@example.com' } });
    const skip = await rig.gql(`mutation { insert_orders_one(object: {qty: 13, customer: {data: {id: 1, name: "Ada", email: "a@example.com"}, on_conflict: {constraint: customers_pkey, update_columns: []}}}) { id } }`);
    expect(skip.body.data).toBeNull();
    expect(skip.body.errors[0].message).toMatch(/on_conflict skipped it/);
  });

  it('parameterized values: quotes and SQL in data are data', async () => {
    const evil = `x'); DROP TABLE orders; --`;
    const r = await rig.gql('mutation($n: String) { insert_orders_one(object: {customer_id: 1, qty: 1, note: $n}) { note } }', { n: evil });
    expect(r.body.data.insert_orders_one.note).toBe(evil);
    expect((await rig.sql('SELECT count(*)::int AS n FROM orders'))[0].n).toBeGreaterThan(0);
  });
});

describe('gateway nested inserts and permissions', () => {
  const { rig } = useRig({
      gateway: {
        adminSecret: 'a',
        permissions: {
          roles: {
            writer: {
              tables: {
                customers: { insert: { columns: ['name', 'email'] }, select: { columns: ['id', 'name'] } },
                orders: { insert: { columns: ['qty'], check: { qty: { _gt: 0 } } }, select: { columns: ['id', 'qty', 'customer_id'] } },
              },
            },
            orders_only: { tables: { orders: { insert: { columns: ['qty', 'customer_id'] }, select: { columns: ['id'] } } } },
          },
        },
      },
    });
  const as = (role: string) => ({ 'x-walnats-admin-secret': 'a', 'x-walnats-role': role });

  it('the nesting sets the foreign key, which the role may not write itself; the check of nested rows applies', async () => {
    const ok = await rig.gql('mutation { insert_customers_one(object: {name: "Ida", email: "ida@example.com", orders: {data: [{qty: 3}]}}) { id name orders { qty customer_id } } }', undefined, as('writer'));
    expect(ok.body.errors).toBeUndefined();
    const c = ok.body.data.insert_customers_one;
    expect(c.orders).toEqual([{ qty: 3, customer_id: c.id }]);
    const direct = await rig.gql('mutation { insert_orders_one(object: {qty: 1, customer_id: 1}) { id } }', undefined, as('writer'));
    expect(direct.body.errors[0].message).toMatch(/customer_id/);
    const before = await rig.sql('SELECT (SELECT count(*) FROM customers)::text c, (SELECT count(*) FROM orders)::text o');
    const bad = await rig.gql('mutation { insert_customers_one(object: {name: "Jo", orders: {data: [{qty: 2}, {qty: 0}]}}) { id } }', undefined, as('writer'));
    expect(bad.body.data).toBeNull();
    expect(bad.body.errors[0].extensions.code).toBe('permission-error');
    expect(await rig.sql('SELECT (SELECT count(*) FROM customers)::text c, (SELECT count(*) FROM orders)::text o')).toEqual(before);
  });

  it('a relationship is offered for nesting only when the role may insert into its table', async () => {
    const r = await rig.gql('mutation { insert_orders_one(object: {qty: 1, customer: {data: {name: "Kim"}}}) { id } }', undefined, as('orders_only'));
    expect(r.body.errors[0].message).toMatch(/"customer" is not defined by type "orders_insert_input"/);
  });
});
