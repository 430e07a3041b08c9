import { describe, expect, it } from 'vitest';
import { startRig, until, useServers } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

describe('gateway names and schema changes', () => {
  const s = useServers();

  it('maps invalid and colliding names deterministically and reports them', async () => {
    const rig = await startRig(s, { sqlFile: 'names.sql', gateway: { schemas: ['public', 'other'] } });
    try {
      const rep = rig.gw.report();
      const t = (name: string, schema = 'public') => rep.mappings.find((m) => m.kind === 'table' && m.table === name && m.schema === schema)?.graphql;
      expect(t('order')).toBe('order_2');
      expect(t('order items')).toBe('order_items');
      expect(t('query')).toBe('query_2'); // `Query` is reserved (case-insensitively)
      expect(t('customers', 'other')).toBe('other_customers');
      expect(rep.collisions.some((c) => c.resolvedAs === 'order_2')).toBe(true);
      expect(rep.mappings.find((m) => m.column === '2nd')?.graphql).toBe('_2nd');
      const r = await rig.gql('{ Order { v } order_2 { v } query_2 { id } order_items { line_no _2nd Gr__e order_2 { v } } customers { name } other_customers { name } }');
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data).toEqual({
        Order: [{ v: 'upper' }], order_2: [{ v: 'lower' }], query_2: [],
        order_items: [{ line_no: 10, _2nd: 'two', Gr__e: 'XL', order_2: { v: 'lower' } }],
        customers: [{ name: 'public' }], other_customers: [{ name: 'other' }],
      });
      const m = await rig.gql('mutation { insert_order_items_one(object: {line_no: 11, _2nd: "x"}) { line_no _2nd } }');
      expect(m.body.data.insert_order_items_one).toEqual({ line_no: 11, _2nd: 'x' });
    } finally {
      await rig.close();
    }
  });

  it('swaps the schema after ALTER TABLE on a schema event; open subscriptions keep working', async () => {
    const rig = await startRig(s);
    try {
      const client = wsClient(rig.wsUrl);
      const ev = collect(client, 'subscription { orders_events { op new { id qty } } }');
      const live = collect(client, 'subscription { customers_aggregate { aggregate { count } } }');
      await until(() => live.results.length >= 1 && rig.gw.stats().subscriptions === 2, 'subscriptions');
      await new Promise((r) => setTimeout(r, 100));
      expect((await rig.gql('{ orders { extra } }')).body.errors[0].message).toMatch(/extra/);
      await rig.sql('ALTER TABLE orders ADD COLUMN extra text DEFAULT \'new\'');
      await rig.publishSchemaEvent('public', 'orders');
      await until(() => rig.gw.stats().schemaVersion === 2, 'schema swap');
      const r = await rig.gql('{ orders(limit: 1) { extra } }');
      expect(r.body.data.orders).toEqual([{ extra: 'new' }]);
      // the subscriptions opened before the swap still deliver
      await rig.publish({ op: 'c', table: 'orders', after: { id: 600, customer_id: 1, qty: 6, extra: 'x' } });
      await until(() => ev.results.length >= 1, 'event after swap');
      expect(ev.results[0].data.orders_events).toEqual({ op: 'INSERT', new: { id: '600', qty: 6 } });
      await rig.sql("INSERT INTO customers (name) VALUES ('after swap')");
      await rig.publish({ op: 'c', table: 'customers', after: { id: 99, name: 'after swap' } });
      await until(() => live.results[live.results.length - 1].data.customers_aggregate.aggregate.count === 4, 'live query after swap');
      // the same WebSocket sees the new schema for new operations
      const fresh = collect(client, 'subscription { orders_events { new { id extra } } }');
      await until(() => rig.gw.stats().subscriptions === 3, 'new subscription');
      await new Promise((r) => setTimeout(r, 100));
      await rig.publish({ op: 'c', table: 'orders', after: { id: 601, customer_id: 1, qty: 1, extra: 'y' } });
      await until(() => fresh.results.length >= 1, 'new-schema event');
      expect(fresh.results[0].data.orders_events.new).toEqual({ id: '601', extra: 'y' });
      ev.stop();
      live.stop();
      fresh.stop();
      await client.dispose();
    } finally {
      await rig.close();
    }
  });

  it('catalog polling picks up a new table without a schema event', async () => {
    const rig = await startRig(s, { gateway: { catalogPollMs: 200 } });
    try {
      await rig.sql('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
      await until(() => rig.gw.stats().schemaVersion >= 2, 'poll swap');
      const r = await rig.gql('mutation { insert_notes_one(object: {body: "hi"}) { id body } }');
      expect(r.body.data.insert_notes_one).toEqual({ id: 1, body: 'hi' });
    } finally {
      await rig.close();
    }
  });
});
