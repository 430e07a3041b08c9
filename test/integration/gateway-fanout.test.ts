/**
 * Shared fan-out: graphql-ws subscribers with the same role, session, document, operation and
 * variables share one execution (and one serialized payload) per event; different roles,
 * sessions (row filters), filters or selections stay separate.
 */
import path from 'node:path';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { fixtures, until, useRig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

const SECRET = 'test-hs256-secret-which-is-long-enough-0123456789';
const hs = (claims: Record<string, unknown>) =>
  new SignJWT({ 'https://hasura.io/jwt/claims': claims }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
const user = (id: number) => ({ 'x-hasura-default-role': 'user', 'x-hasura-allowed-roles': ['user'], 'x-hasura-user-id': String(id) });

describe('gateway fan-out: shared executions', () => {
  const { rig } = useRig({ gateway: { adminSecret: 'adm1n', jwt: { secret: SECRET }, permissions: path.join(fixtures, 'permissions.yaml') } });

  it('N subscribers of the same subscription cause one execution per event; roles, sessions and filters stay separate', async () => {
    const admin = { headers: { 'x-walnats-admin-secret': 'adm1n' } };
    const Q = 'subscription { orders_events { op new { id customer_id qty } } }';
    const N = 12;
    const adminClients = Array.from({ length: 3 }, () => wsClient(rig.wsUrl, admin));
    // N admin subscribers of the same subscription, spread over three sockets (two per socket on some).
    const same = Array.from({ length: N }, (_, i) => collect(adminClients[i % 3], Q));
    // Same role, another filter: its own execution.
    const filtered = collect(adminClients[0], 'subscription { orders_events(where: {qty: {_gt: 10}}) { op new { id customer_id qty } } }');
    // Same document, other variables: its own execution.
    const byVar = [collect(adminClients[1], 'subscription($q: Int) { orders_events(where: {qty: {_gt: $q}}) { op new { id } } }', { q: 0 }), collect(adminClients[2], 'subscription($q: Int) { orders_events(where: {qty: {_gt: $q}}) { op new { id } } }', { q: 0 })];
    // Users 1 (two sockets) and 2: the role's row filter depends on the session, so user 1's share one execution and user 2 has its own.
    const u1a = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${await hs(user(1))}` } });
    const u1b = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${await hs(user(1))}` } });
    const u2 = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${await hs(user(2))}` } });
    const user1 = [collect(u1a, Q), collect(u1b, Q)];
    const user2 = collect(u2, Q);
    const total = N + 1 + 2 + 3;
    await until(() => rig.gw.stats().subscriptions === total, `${total} subscriptions`);
    await new Promise((r) => setTimeout(r, 100));

    const before = rig.gw.stats().eventExecutions;
    await rig.publish({ op: 'c', table: 'orders', after: { id: 7001, customer_id: 1, qty: 5, note: 'n' } });
    await rig.publish({ op: 'c', table: 'orders', after: { id: 7002, customer_id: 2, qty: 50, note: 'n' } });
    await until(() => same.every((c) => c.results.length >= 2) && filtered.results.length >= 1 && byVar.every((c) => c.results.length >= 2) && user1.every((c) => c.results.length >= 1) && user2.results.length >= 1, 'deliveries');
    await new Promise((r) => setTimeout(r, 200));

    // Every subscriber got what it would have got alone.
    for (const c of same) expect(c.results.map((r) => r.data.orders_events.new.id)).toEqual(['7001', '7002']);
    expect(filtered.results.map((r) => r.data.orders_events.new.id)).toEqual(['7002']);
    for (const c of byVar) expect(c.results.map((r) => r.data.orders_events.new.id)).toEqual(['7001', '7002']);
    for (const c of user1) expect(c.results.map((r) => r.data.orders_events.new)).toEqual([{ id: '7001', customer_id: 1, qty: 5 }]);
    expect(user2.results.map((r) => r.data.orders_events.new)).toEqual([{ id: '7002', customer_id: 2, qty: 50 }]);

    // Executions: shared admin (2 events) + filtered (1) + byVar (2) + user 1 (1) + user 2 (1) = 7, not 12×2 + … = 33.
    expect(rig.gw.stats().eventExecutions - before).toBe(7);

    // Leaving: the group runs on for the rest, and ends with the last one.
    for (const c of same.slice(1)) c.stop();
    await until(() => rig.gw.stats().subscriptions === total - (N - 1), 'subscribers left');
    const b2 = rig.gw.stats().eventExecutions;
    await rig.publish({ op: 'c', table: 'orders', after: { id: 7003, customer_id: 1, qty: 1, note: 'n' } });
    await until(() => same[0].results.length >= 3, 'remaining subscriber');
    expect(same.slice(1).every((c) => c.results.length === 2)).toBe(true);
    for (const c of [same[0], filtered, ...byVar, ...user1, user2]) c.stop();
    await until(() => rig.gw.stats().subscriptions === 0, 'all closed');
    expect(rig.gw.stats().eventExecutions - b2).toBeLessThanOrEqual(4); // admin, byVar, user 1 (user 2 and filtered do not see it)

    // A new subscriber after everyone left starts a new execution.
    const again = collect(adminClients[0], Q);
    await until(() => rig.gw.stats().subscriptions === 1, 'resubscribed');
    await new Promise((r) => setTimeout(r, 100));
    await rig.publish({ op: 'c', table: 'orders', after: { id: 7004, customer_id: 1, qty: 1, note: 'n' } });
    await until(() => again.results.length >= 1, 'new group');
    expect(again.results[0].data.orders_events.new.id).toBe('7004');
    again.stop();
    await until(() => rig.gw.stats().subscriptions === 0, 'closed');
    await Promise.all([...adminClients, u1a, u1b, u2].map((c) => c.dispose()));
  });
});
