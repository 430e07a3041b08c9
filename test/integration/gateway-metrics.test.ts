/**
 * The gateway's metrics as `walnats all` exposes them on /metrics (the metrics the
 * dashboards read): open subscriptions, deliveries, resolver latency, requests by kind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { startWalnatsAll, type WalnatsAll } from '../harness/walnats-all.ts';
import type { PgServer } from '../harness/postgres.ts';
import type { RunHandle } from '../../src/main.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

let all: WalnatsAll | undefined;
let pgs: PgServer;
let handle: RunHandle;
let base: string;
let db: string;
const admin = { 'x-walnats-admin-secret': 'metrics-secret' };

async function gql(query: string) {
  const r = await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...admin }, body: JSON.stringify({ query }) });
  return (await r.json()) as { data?: any; errors?: unknown[] };
}

/** The value of one series in the /metrics text (`name` with its labels, as printed). */
async function metric(series: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  if (!line) throw new Error(`${series} not in /metrics`);
  return Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  all = await startWalnatsAll({
    db: 'gwm',
    schemaSql: `CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL); INSERT INTO notes (body) VALUES ('one');`,
    adminSecret: admin['x-walnats-admin-secret'],
  });
  ({ pgs, handle, base, db } = all);
}, 120_000);

afterAll(() => all?.stop());

describe('gateway metrics on /metrics', () => {
  it('queries and mutations: requests by kind and the resolver latency histogram', async () => {
    const latency0 = await metric('walnats_gateway_resolver_latency_seconds_count');
    const queries0 = await metric('walnats_gateway_requests_total{kind="query"}');
    const mutations0 = await metric('walnats_gateway_requests_total{kind="mutation"}');
    expect((await gql('{ notes { body } }')).data.notes).toEqual([{ body: 'one' }]);
    expect((await gql('{ a: notes { id } b: notes_aggregate { aggregate { count } } }')).errors).toBeUndefined();
    expect((await gql('mutation { insert_notes_one(object: {body: "two"}) { id } }')).errors).toBeUndefined();
    expect(await metric('walnats_gateway_requests_total{kind="query"}')).toBe(queries0 + 2);
    expect(await metric('walnats_gateway_requests_total{kind="mutation"}')).toBe(mutations0 + 1);
    // one observation per root field: 1 + 2 + 1
    expect(await metric('walnats_gateway_resolver_latency_seconds_count')).toBe(latency0 + 4);
    expect(await metric('walnats_gateway_resolver_latency_seconds_sum')).toBeGreaterThan(0);
    expect(await metric('walnats_gateway_resolver_latency_seconds_bucket{le="+Inf"}')).toBe(latency0 + 4);
  });

  it('open subscriptions are a gauge; deliveries count what is sent', async () => {
    expect(await metric('walnats_gateway_subscriptions')).toBe(0);
    const subs0 = await metric('walnats_gateway_requests_total{kind="subscription"}');
    const delivered0 = await metric('walnats_gateway_deliveries_total');
    const client = wsClient(`ws://127.0.0.1:${handle.httpPort}/graphql`, { headers: admin });
    const events = collect(client, 'subscription { notes_events(ops: [INSERT]) { new { body } } }');
    const live = collect(client, 'subscription { notes(order_by: {id: asc}) { body } }');
    await waitFor('two open subscriptions', async () => (await metric('walnats_gateway_subscriptions')) === 2 || undefined, 30_000, 100);
    await waitFor('the live query result', async () => live.results.length >= 1 || undefined, 30_000, 50);
    expect(await metric('walnats_gateway_requests_total{kind="subscription"}')).toBe(subs0 + 2);
    let n = 0;
    await waitFor('an insert event and the live re-run', async () => {
      if (events.results.length && live.results.length >= 2) return true;
      if (n < 10) await pgs.sql('INSERT INTO notes (body) VALUES ($1)', [`n${++n}`], db);
      await new Promise((r) => setTimeout(r, 1000));
      return undefined;
    }, 60_000, 50);
    await waitFor('deliveries counted', async () => (await metric('walnats_gateway_deliveries_total')) >= delivered0 + events.results.length + live.results.length || undefined, 10_000, 100);
    events.stop();
    await waitFor('one subscription left', async () => (await metric('walnats_gateway_subscriptions')) === 1 || undefined, 30_000, 100);
    live.stop();
    await client.dispose();
    await waitFor('no subscription left', async () => (await metric('walnats_gateway_subscriptions')) === 0 || undefined, 30_000, 100);
  });
});
