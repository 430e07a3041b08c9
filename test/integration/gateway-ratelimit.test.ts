/**
 * Rate limits per role through the real gateway: HTTP operations and WebSocket subscribes
 * each take a token; the refusal is a `rate-limited` GraphQL error with HTTP 429. Rates are
 * tiny (a token per 1000 s) so that no refill can happen during the test, however slow.
 */
import { SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { until, useRig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

const SECRET = 'rate-limit-test-secret-which-is-long-enough-0123';
const token = (role: string, userId: number) =>
  new SignJWT({ 'https://hasura.io/jwt/claims': { 'x-hasura-default-role': role, 'x-hasura-allowed-roles': [role], 'x-hasura-user-id': String(userId) } })
    .setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));

describe('gateway rate limits', () => {
  const registry = new Registry();
  const { rig } = useRig({
      gateway: {
        adminSecret: 'adm1n',
        jwt: { secret: SECRET },
        anonymousRole: 'anon',
        rateLimit: 0.001, // the default of every role: a burst of 1
        metrics: { registry },
        permissions: {
          roles: {
            user: {
              rate_limit: { per_second: 0.001, burst: 2, by: 'X-Hasura-User-Id' },
              tables: { orders: { select: { columns: ['id', 'customer_id'], filter: { customer_id: { _eq: 'X-Hasura-User-Id' } } } } },
            },
            reader: { rate_limit: 0, tables: { customers: { select: { columns: ['id'] } } } },
            anon: { tables: { customers: { select: { columns: ['id'] } } } },
          },
        },
      },
    });

  it('a role past its bucket gets a rate-limited error with HTTP 429 and Retry-After; a bucket per user with `by`', async () => {
    const t1 = await token('user', 1);
    const q = '{ orders { id } }';
    for (let i = 0; i < 2; i++) {
      const r = await rig.gql(q, undefined, { authorization: `Bearer ${t1}` });
      expect(r.status).toBe(200);
      expect(r.body.errors).toBeUndefined();
    }
    const res = await fetch(rig.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${t1}` }, body: JSON.stringify({ query: q }) });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await res.json()) as { data?: unknown; errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.data).toBeUndefined();
    expect(body.errors[0].extensions.code).toBe('rate-limited');
    expect(body.errors[0].message).toMatch(/^rate limit exceeded for role user: 0\.001 operations per second; retry in \d+ s$/);
    // user 2 of the same role has a bucket of its own
    const r2 = await rig.gql(q, undefined, { authorization: `Bearer ${await token('user', 2)}` });
    expect(r2.status).toBe(200);
    expect(r2.body.errors).toBeUndefined();
    expect(r2.body.data.orders).toEqual([{ id: '3' }]); // bigint ids are strings
  });

  it('the configured default applies to roles without their own (anonymous included); rate_limit 0 and the admin are unlimited', async () => {
    expect((await rig.gql('{ customers { id } }')).status).toBe(200);
    const second = await rig.gql('{ customers { id } }');
    expect(second.status).toBe(429);
    expect(second.body.errors[0].message).toMatch(/role anon/);
    for (let i = 0; i < 5; i++) {
      expect((await rig.gql('{ customers { id } }', undefined, { authorization: `Bearer ${await token('reader', 9)}` })).status).toBe(200);
      expect((await rig.gql('{ customers { id } }', undefined, { 'x-walnats-admin-secret': 'adm1n' })).status).toBe(200);
    }
  });

  it('each subscribe on a WebSocket takes a token; events delivered do not', async () => {
    const client = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${await token('user', 3)}` } });
    const a = collect(client, 'subscription { orders { id } }');
    const b = collect(client, 'subscription { orders { id } }');
    await until(() => a.results.length && b.results.length, 'two live results');
    const c = collect(client, 'subscription { orders { id } }');
    await until(() => c.errors.length || c.completed, 'the third subscribe refused');
    expect(JSON.stringify(c.errors)).toMatch(/rate-limited/);
    // the two accepted ones keep receiving: a change re-runs them beyond the bucket
    await rig.sql(`INSERT INTO orders (customer_id, qty) VALUES (3, 1)`);
    await rig.publish({ op: 'c', table: 'orders', after: { id: 999, customer_id: 3, qty: 1 } });
    await until(() => a.results.length >= 2 && b.results.length >= 2, 'live re-runs');
    expect(a.errors).toEqual([]);
    a.stop();
    b.stop();
    await client.dispose();
  });

  it('refusals are counted per role in walnats_gateway_rate_limited_total', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/walnats_gateway_rate_limited_total\{role="user"\} [1-9]/);
    expect(text).toMatch(/walnats_gateway_rate_limited_total\{role="anon"\} [1-9]/);
  });
});
