import { describe, expect, it } from 'vitest';
import { until, useRig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

describe('gateway queries', () => {
  const { rig } = useRig();

  const q = async (query: string, variables?: Record<string, unknown>) => {
    const before = rig.gw.stats().statements;
    const r = await rig.gql(query, variables);
    return { ...r.body, statements: rig.gw.stats().statements - before };
  };

  it('request bodies over 25 MB are refused, with a Content-Length and chunked', async () => {
    const big = JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(25_000_100) } });
    const withLength = await fetch(rig.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(withLength.status).toBe(413);
    // A stream body: sent chunked, without a Content-Length.
    const stream = (text: string) => {
      let i = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (i >= text.length) return c.close();
          c.enqueue(new TextEncoder().encode(text.slice(i, (i += 1 << 20))));
        },
      });
    };
    const chunked = await fetch(rig.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream(big), duplex: 'half' } as RequestInit);
    expect(chunked.status).toBe(413);
    const small = await fetch(rig.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream('{"query":"{ __typename }"}'), duplex: 'half' } as RequestInit);
    expect(small.status).toBe(200);
    expect((await small.json()).data).toEqual({ __typename: 'query_root' });
  });

  it('lists rows with lossless scalars', async () => {
    const r = await q('{ orders(order_by: {id: asc}, limit: 1) { id qty price big created_at meta data tags ratio } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.orders).toEqual([{
      id: '1', qty: 3, price: '12.5000', big: '9007199254740993', created_at: '2024-02-29T12:45:00.123456Z',
      meta: { a: 1.5 }, data: 'AQL/', tags: ['x', 'y'], ratio: 0.1,
    }]);
    expect(r.statements).toBe(1);
  });

  it('float NaN stays representable', async () => {
    const r = await q('{ orders(where: {id: {_eq: 3}}) { ratio } }');
    expect(r.data.orders).toEqual([{ ratio: 'NaN' }]);
  });

  it('by_pk, aggregate with count/sum/avg/min/max', async () => {
    const r = await q(`{
      orders_by_pk(id: 2) { id note }
      missing: orders_by_pk(id: 999) { id }
      orders_aggregate(where: {qty: {_gte: 3}}) {
        aggregate { count sum { qty price } avg { qty } min { qty created_at } max { qty price } }
        nodes { id }
      }
    }`);
    expect(r.errors).toBeUndefined();
    expect(r.data.orders_by_pk).toEqual({ id: '2', note: 'second' });
    expect(r.data.missing).toBeNull();
    const a = r.data.orders_aggregate.aggregate;
    expect(a.count).toBe(4);
    expect(a.sum).toEqual({ qty: '40', price: '119.7500' });
    expect(a.avg.qty).toBe('10.0000000000000000');
    expect(a.min.qty).toBe(3);
    expect(a.max).toEqual({ qty: 20, price: '100.0000' });
    expect(r.data.orders_aggregate.nodes).toHaveLength(4);
    expect(r.statements).toBe(1); // three root fields, one statement
  });

  it('where operators', async () => {
    const ids = async (where: unknown) => {
      const r = await q('query($w: orders_bool_exp) { orders(where: $w, order_by: [{id: asc}]) { id } }', { w: where });
      expect(r.errors).toBeUndefined();
      return r.data.orders.map((o: { id: string }) => Number(o.id));
    };
    expect(await ids({ qty: { _eq: 3 } })).toEqual([1]);
    expect(await ids({ qty: { _neq: 3 } })).toEqual([2, 3, 4]);
    expect(await ids({ qty: { _gt: 5 } })).toEqual([2, 4]);
    expect(await ids({ qty: { _gte: 5 } })).toEqual([2, 3, 4]);
    expect(await ids({ qty: { _lt: 5 } })).toEqual([1]);
    expect(await ids({ qty: { _lte: 5 } })).toEqual([1, 3]);
    expect(await ids({ qty: { _in: [3, 20] } })).toEqual([1, 4]);
    expect(await ids({ qty: { _nin: [3, 20] } })).toEqual([2, 3]);
    expect(await ids({ note: { _is_null: true } })).toEqual([4]);
    expect(await ids({ note: { _like: 'f%' } })).toEqual([1]);
    expect(await ids({ note: { _ilike: 'SEC%' } })).toEqual([2]);
    expect(await ids({ _or: [{ qty: { _eq: 3 } }, { qty: { _eq: 5 } }] })).toEqual([1, 3]);
    expect(await ids({ _and: [{ qty: { _gt: 3 } }, { qty: { _lt: 20 } }] })).toEqual([2, 3]);
    expect(await ids({ _not: { qty: { _gt: 3 } } })).toEqual([1]);
    expect(await ids({ big: { _eq: '9007199254740993' } })).toEqual([1]);
    expect(await ids({ price: { _gt: '12.4999' } })).toEqual([1, 2]);
    expect(await ids({ meta: { _eq: { a: 1.5 } } })).toEqual([1]);
    // across relationships: object and array
    expect(await ids({ customer: { name: { _eq: 'Bob' } } })).toEqual([3]);
    expect(await ids({ items: { sku: { _in: ['C', 'D'] } } })).toEqual([2, 3]);
  });

  it('order_by, limit, offset, order by a relationship', async () => {
    const r = await q('{ a: orders(order_by: [{qty: desc}], limit: 2, offset: 1) { id } b: orders(order_by: [{customer: {name: desc}}, {id: asc}]) { id } c: customers(order_by: [{orders_aggregate: {count: desc}}, {id: asc}]) { id } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.a.map((o: { id: string }) => o.id)).toEqual(['2', '3']);
    expect(r.data.b.map((o: { id: string }) => o.id)).toEqual(['4', '3', '1', '2']);
    expect(r.data.c.map((o: { id: number }) => o.id)).toEqual([1, 2, 3]);
    expect(r.statements).toBe(1);
  });

  it('order_by keeps the written order: list items, keys of one object, in the document and in variables', async () => {
    const ids = (rows: Array<{ id: string }>) => rows.map((o) => o.id);
    const r = await q(`{
      a: orders(order_by: [{customer_id: desc}, {qty: asc}]) { id }
      b: orders(order_by: [{qty: asc}, {customer_id: desc}]) { id }
      c: orders(order_by: {qty: desc, customer_id: asc}) { id }
      d: orders(order_by: {customer_id: asc, qty: desc}) { id }
      e: orders(order_by: [{customer: {org_id: asc, name: desc}}, {id: asc}]) { id }
      f: customers(order_by: {id: asc}, where: {id: {_eq: 1}}) { orders(order_by: {qty: desc, id: asc}) { id } }
    }`);
    expect(r.errors).toBeUndefined();
    expect(ids(r.data.a)).toEqual(['4', '3', '1', '2']);
    expect(ids(r.data.b)).toEqual(['1', '3', '2', '4']);
    expect(ids(r.data.c)).toEqual(['4', '2', '3', '1']); // qty first, although customer_id is declared before it
    expect(ids(r.data.d)).toEqual(['2', '1', '3', '4']);
    expect(ids(r.data.e)).toEqual(['4', '1', '2', '3']); // org 1 (Cy, Ada), then org 2 (Bob)
    expect(ids(r.data.f[0].orders)).toEqual(['2', '1']);
    expect(r.statements).toBe(1);
    const v = await q('query($o: [orders_order_by!], $p: [orders_order_by!]) { x: orders(order_by: $o) { id } y: orders(order_by: $p) { id } }', {
      o: [{ qty: 'desc', customer_id: 'asc' }],
      p: { customer_id: 'desc', qty: 'asc' },
    });
    expect(v.errors).toBeUndefined();
    expect(ids(v.data.x)).toEqual(['4', '2', '3', '1']);
    expect(ids(v.data.y)).toEqual(['4', '3', '1', '2']);
    // and over graphql-ws, in a live query
    const client = wsClient(rig.wsUrl);
    const live = collect(client, 'subscription($o: [orders_order_by!]) { orders(order_by: $o) { id } }', { o: { qty: 'desc', customer_id: 'asc' } });
    await until(() => live.results.length || live.errors.length, 'live result');
    expect(live.errors).toEqual([]);
    expect(ids(live.results[0].data.orders)).toEqual(['4', '2', '3', '1']);
    live.stop();
    await client.dispose();
  });

  it('nested relationships both ways in one statement', async () => {
    const r = await q(`{
      customers(order_by: {id: asc}) {
        name
        orders(order_by: {id: asc}, where: {qty: {_gt: 1}}) {
          id
          customer { name orders_aggregate { aggregate { count } } }
          items(order_by: {sku: asc}) { sku order { id customer { id } } }
        }
      }
    }`);
    expect(r.errors).toBeUndefined();
    expect(r.statements).toBe(1);
    const ada = r.data.customers[0];
    expect(ada.name).toBe('Ada');
    expect(ada.orders.map((o: { id: string }) => o.id)).toEqual(['1', '2']);
    expect(ada.orders[0].customer).toEqual({ name: 'Ada', orders_aggregate: { aggregate: { count: 2 } } });
    expect(ada.orders[0].items).toEqual([
      { sku: 'A', order: { id: '1', customer: { id: 1 } } },
      { sku: 'B', order: { id: '1', customer: { id: 1 } } },
    ]);
  });

  it('fragments, aliases, variables, @include/@skip', async () => {
    const r = await q(`query($inc: Boolean!) {
      x: orders(where: {id: {_eq: 1}}) { ...F itemsA: items(where: {sku: {_eq: "A"}}) { sku } itemsB: items(where: {sku: {_eq: "B"}}) { sku } note @include(if: $inc) qty @skip(if: true) }
    } fragment F on orders { id ... on orders { customer_id } }`, { inc: false });
    expect(r.errors).toBeUndefined();
    expect(r.data.x).toEqual([{ id: '1', customer_id: 1, itemsA: [{ sku: 'A' }], itemsB: [{ sku: 'B' }] }]);
  });

  it('views are queryable', async () => {
    const r = await q('{ big_orders(order_by: {id: asc}) { id qty } }');
    expect(r.data.big_orders).toEqual([{ id: '2', qty: 12 }, { id: '4', qty: 20 }]);
  });

  it('distinct_on', async () => {
    const r = await q('{ orders(distinct_on: [customer_id], order_by: [{customer_id: asc}, {qty: desc}]) { customer_id qty } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.orders).toEqual([{ customer_id: 1, qty: 12 }, { customer_id: 2, qty: 5 }, { customer_id: 3, qty: 20 }]);
  });
});
