/**
 * The JetStream feed behind subscriptions must not end in silence: when its consumer
 * disappears on the server (deleted, or lost with a restart), open subscriptions keep
 * receiving events from where they were.
 */
import { describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { until, useRig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

describe('subscription feed resilience', () => {
  const { s, rig } = useRig();

  it('an open subscription keeps receiving events after its consumer is deleted on the server', async () => {
    const client = wsClient(rig.wsUrl);
    const sub = collect(client, 'subscription { orders_events { op new { id } } }');
    await until(() => rig.gw.stats().subscriptions === 1, 'subscription');
    await new Promise((r) => setTimeout(r, 200));
    await rig.publish({ op: 'c', table: 'orders', after: { id: 901, customer_id: 1, qty: 1 } });
    await until(() => sub.results.length >= 1, 'first event');

    const jsm = await jetstreamManager(rig.nc);
    const names: string[] = [];
    for await (const ci of jsm.consumers.list(rig.stream)) names.push(ci.name);
    expect(names.length).toBeGreaterThan(0);
    for (const n of names) await jsm.consumers.delete(rig.stream, n);

    await rig.publish({ op: 'c', table: 'orders', after: { id: 902, customer_id: 1, qty: 1 } });
    await rig.publish({ op: 'c', table: 'orders', after: { id: 903, customer_id: 1, qty: 1 } });
    await until(() => sub.results.length >= 3, 'events after the consumer was deleted', 20_000);
    expect(sub.results.map((r) => r.data.orders_events.new.id)).toEqual(['901', '902', '903']);
    expect(sub.errors).toEqual([]);
    sub.stop();
    await client.dispose();
  }, 60_000);

  it('an open subscription resumes within seconds after nats-server restarts (its consumer and pull requests lost)', async () => {
    const client = wsClient(rig.wsUrl);
    const sub = collect(client, 'subscription { orders_events { op new { id } } }');
    await until(() => rig.gw.stats().subscriptions === 1, 'subscription');
    await new Promise((r) => setTimeout(r, 200));
    await rig.publish({ op: 'c', table: 'orders', after: { id: 911, customer_id: 1, qty: 1 } });
    await until(() => sub.results.length >= 1, 'first event');

    await s.nats.stop();
    await s.nats.start();
    // The publishing connection reconnects on its own; publish once it can.
    await until(async () => {
      try {
        await rig.publish({ op: 'c', table: 'orders', after: { id: 912, customer_id: 1, qty: 1 } });
        return true;
      } catch {
        return undefined;
      }
    }, 'publishing after the restart', 20_000);
    const t0 = Date.now();
    await until(() => sub.results.length >= 2, 'the event after the restart', 20_000);
    expect(sub.results.map((r) => r.data.orders_events.new.id)).toEqual(['911', '912']);
    expect(Date.now() - t0).toBeLessThan(20_000);
    sub.stop();
    await client.dispose();
  }, 90_000);
});
