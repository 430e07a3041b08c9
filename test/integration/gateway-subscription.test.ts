import { describe, expect, it } from 'vitest';
import { txWithXid, until, useRig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

describe('gateway subscriptions (graphql-ws, JetStream)', () => {
  const { s, rig } = useRig();

  it('streams typed change events filtered by where and ops', async () => {
    const client = wsClient(rig.wsUrl);
    const all = collect(client, 'subscription { orders_events { op old { id qty } new { id qty big price } cursor commit_time commit_lsn seq } }');
    const big = collect(client, 'subscription { orders_events(where: {qty: {_gt: 10}}, ops: [INSERT, DELETE]) { op new { id } old { id } } }');
    await until(() => rig.gw.stats().subscriptions === 2, 'subscriptions');
    await until(async () => (await rig.gql('{ __typename }')).status === 200);
    // give the shared consumer a moment to exist: subscribe() resolves after it is created
    await new Promise((r) => setTimeout(r, 100));
    await rig.publish({ op: 'c', table: 'orders', after: { id: 50, customer_id: 1, qty: 5, big: '9223372036854775807', price: '1.2300' } });
    await rig.publish({ op: 'c', table: 'orders', after: { id: 51, customer_id: 1, qty: 15, big: null, price: null } });
    await rig.publish({ op: 'u', table: 'orders', before: { id: 51, customer_id: 1, qty: 15 }, after: { id: 51, customer_id: 1, qty: 16, big: null, price: null } });
    await rig.publish({ op: 'd', table: 'orders', before: { id: 51, customer_id: 1, qty: 16 } });
    await rig.publish({ op: 'c', table: 'customers', after: { id: 9, name: 'x', org_id: 1 } }); // other table
    await until(() => all.results.length >= 4 && big.results.length >= 2, 'events');
    expect(all.results.map((r) => r.data.orders_events.op)).toEqual(['INSERT', 'INSERT', 'UPDATE', 'DELETE']);
    expect(all.results[0].data.orders_events).toMatchObject({ new: { id: '50', qty: 5, big: '9223372036854775807', price: '1.2300' }, old: null, commit_time: '2025-12-03T12:00:00.123Z', seq: 1 });
    expect(all.results[2].data.orders_events.old).toEqual({ id: '51', qty: 15 });
    expect(all.results[3].data.orders_events.new).toBeNull();
    expect(big.results.map((r) => r.data.orders_events.op)).toEqual(['INSERT', 'DELETE']);
    all.stop();
    big.stop();
    await until(() => rig.gw.stats().subscriptions === 0, 'subscriptions closed on complete');
    await client.dispose();
  });

  it('snapshot-then-subscribe and resume after a disconnect: nothing lost, nothing repeated', async () => {
    // A change committed and already published.
    const t1 = await txWithXid(s, rig.db, ["INSERT INTO orders (id, customer_id, qty) VALUES (1001, 1, 1)"]);
    await rig.publish({ op: 'c', table: 'orders', after: { id: 1001, customer_id: 1, qty: 1 }, txid: t1.xid });
    // A change committed but not yet published (CDC lag).
    const t2 = await txWithXid(s, rig.db, ["INSERT INTO orders (id, customer_id, qty) VALUES (1002, 1, 2)"]);
    const snap = await rig.gql('{ orders(where: {id: {_gte: 1001}}, order_by: {id: asc}) { id } walnats_cursor }');
    expect(snap.body.errors).toBeUndefined();
    expect(snap.body.data.orders.map((o: { id: string }) => o.id)).toEqual(['1001', '1002']);
    const cursor = snap.body.data.walnats_cursor;
    // The lagging event lands after the query, then a new change.
    await rig.publish({ op: 'c', table: 'orders', after: { id: 1002, customer_id: 1, qty: 2 }, txid: t2.xid });
    const t3 = await txWithXid(s, rig.db, ["INSERT INTO orders (id, customer_id, qty) VALUES (1003, 1, 3)"]);
    await rig.publish({ op: 'c', table: 'orders', after: { id: 1003, customer_id: 1, qty: 3 }, txid: t3.xid });

    const q = 'subscription($from: String) { orders_events(from: $from, where: {id: {_gte: 1001}}) { op new { id } cursor } }';
    let client = wsClient(rig.wsUrl);
    let sub = collect(client, q, { from: cursor });
    await until(() => sub.results.length >= 1, 'first event');
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.results.map((r) => r.data.orders_events.new.id)).toEqual(['1003']); // 1002 was in the snapshot
    const resumeFrom = sub.results[0].data.orders_events.cursor;
    // Disconnect; changes happen meanwhile.
    sub.stop();
    await client.dispose();
    const t4 = await txWithXid(s, rig.db, ["INSERT INTO orders (id, customer_id, qty) VALUES (1004, 1, 4)"]);
    await rig.publish({ op: 'c', table: 'orders', after: { id: 1004, customer_id: 1, qty: 4 }, txid: t4.xid });
    const t5 = await txWithXid(s, rig.db, ["UPDATE orders SET qty = 5 WHERE id = 1004"]);
    await rig.publish({ op: 'u', table: 'orders', before: null, after: { id: 1004, customer_id: 1, qty: 5 }, txid: t5.xid });
    // Reconnect from the last cursor received.
    client = wsClient(rig.wsUrl);
    sub = collect(client, q, { from: resumeFrom });
    await until(() => sub.results.length >= 2, 'resumed events');
    const t6 = await txWithXid(s, rig.db, ["DELETE FROM orders WHERE id = 1004"]);
    await rig.publish({ op: 'd', table: 'orders', before: { id: 1004 }, txid: t6.xid });
    await until(() => sub.results.length >= 3, 'live after resume');
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.results.map((r) => `${r.data.orders_events.op}:${r.data.orders_events.new?.id ?? '-'}`)).toEqual(['INSERT:1004', 'UPDATE:1004', 'DELETE:-']);
    sub.stop();
    await client.dispose();
  });

  it('rejects a forged cursor', async () => {
    const client = wsClient(rig.wsUrl);
    const sub = collect(client, 'subscription { orders_events(from: "w1bm90LWEtY3Vyc29y") { op } }');
    await until(() => sub.errors.length || sub.results.length, 'error');
    expect(JSON.stringify(sub.errors.length ? sub.errors : sub.results)).toContain('invalid cursor');
    await client.dispose();
  });

  it('live query re-runs on insert, update and delete of the tables it reads', async () => {
    const client = wsClient(rig.wsUrl);
    const live = collect(client, 'subscription { customers(where: {id: {_gte: 500}}, order_by: {id: asc}) { id name orders_aggregate { aggregate { count } } } }');
    await until(() => live.results.length >= 1, 'initial result');
    expect(live.results[0].data.customers).toEqual([]);
    const last = () => live.results[live.results.length - 1].data.customers;
    await rig.sql("INSERT INTO customers (id, name) VALUES (500, 'Live')");
    await rig.publish({ op: 'c', table: 'customers', after: { id: 500, name: 'Live', org_id: 1 } });
    await until(() => last().length === 1, 'insert seen');
    expect(last()).toEqual([{ id: 500, name: 'Live', orders_aggregate: { aggregate: { count: 0 } } }]);
    await rig.sql("UPDATE customers SET name = 'Live2' WHERE id = 500");
    await rig.publish({ op: 'u', table: 'customers', after: { id: 500, name: 'Live2', org_id: 1 } });
    await until(() => last()[0]?.name === 'Live2', 'update seen');
    // A change to a related table it reads (orders, through the aggregate) re-runs it too.
    await rig.sql('INSERT INTO orders (customer_id, qty) VALUES (500, 1)');
    await rig.publish({ op: 'c', table: 'orders', after: { id: 7777, customer_id: 500, qty: 1 } });
    await until(() => last()[0]?.orders_aggregate.aggregate.count === 1, 'related insert seen');
    await rig.sql('DELETE FROM orders WHERE customer_id = 500');
    await rig.sql('DELETE FROM customers WHERE id = 500');
    await rig.publish({ op: 'd', table: 'customers', before: { id: 500 } });
    await until(() => last().length === 0, 'delete seen');
    // Only changes re-run it: an unrelated table's event sends nothing new.
    const n = live.results.length;
    await rig.publish({ op: 'c', table: 'items', after: { id: 1, order_id: 1, sku: 'Z' } });
    await new Promise((r) => setTimeout(r, 200));
    expect(live.results.length).toBe(n);
    live.stop();
    await until(() => rig.gw.stats().subscriptions === 0, 'live query closed');
    await client.dispose();
  });

  it('a burst of changes is coalesced into few re-runs', async () => {
    const client = wsClient(rig.wsUrl);
    const live = collect(client, 'subscription { items_aggregate { aggregate { count } } }');
    await until(() => live.results.length >= 1, 'initial');
    const before = rig.gw.stats().statements;
    await rig.sql("INSERT INTO items (order_id, sku) SELECT 2, 'burst' || g FROM generate_series(1, 50) g");
    await Promise.all(Array.from({ length: 50 }, (_, i) => rig.publish({ op: 'c', table: 'items', after: { id: 1000 + i, order_id: 2, sku: 'b' } })));
    const expected = (await rig.sql<{ n: number }>('SELECT count(*)::int AS n FROM items'))[0].n;
    await until(() => live.results[live.results.length - 1].data.items_aggregate.aggregate.count === expected, 'final count');
    expect(rig.gw.stats().statements - before).toBeLessThan(50);
    live.stop();
    await client.dispose();
  });

  it('subscriptions over SSE', async () => {
    const ctl = new AbortController();
    const res = await fetch(rig.url, { method: 'POST', signal: ctl.signal, headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query: 'subscription { customers_events { op new { id name } } }' }) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    await until(() => rig.gw.stats().subscriptions >= 1, 'sse subscription');
    await new Promise((r) => setTimeout(r, 100));
    await rig.publish({ op: 'c', table: 'customers', after: { id: 77, name: 'Sse', org_id: 1 } });
    while (!text.includes('Sse')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain('"op":"INSERT"');
    ctl.abort();
  });
});
