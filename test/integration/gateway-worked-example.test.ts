/**
 * The worked example of README.md / docs/gateway.md, run as written against `walnats all`:
 * the real daemon feeds every subscription here (no hand-made events). Each mutation kind
 * arrives as an event; a live query follows insert, update and delete; a subscription
 * resumes from a cursor after a disconnect; the schema swaps after ALTER TABLE on the
 * daemon's own schema event; the permission rule holds for a customer's JWT.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Generous waits (a loaded 2-core CI machine), never a timing check.
vi.setConfig({ testTimeout: 180_000 });
import { SignJWT } from 'jose';
import type { PgServer } from '../harness/postgres.ts';
import { startWalnatsAll, type WalnatsAll } from '../harness/walnats-all.ts';
import { waitFor } from '../harness/ports.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';
import type { RunHandle } from '../../src/main.ts';

const ADMIN = 'worked-example-admin';
const JWT_SECRET = 'worked-example-jwt-secret-of-32-bytes!';
const PERMISSIONS = `
roles:
  customer:
    tables:
      orders:
        select:
          columns: [id, customer_id, qty, price]
          filter: { customer_id: { _eq: X-Hasura-User-Id } }
        insert:
          columns: [qty, price]
          check: { qty: { _gt: 0 } }
          set: { customer_id: X-Hasura-User-Id }
`;

let all: WalnatsAll;
let pgs: PgServer;
let handle: RunHandle;
let db: string;
let base: string;
let dir: string;

const admin = { 'x-walnats-admin-secret': ADMIN };
async function gql(query: string, variables?: Record<string, unknown>, headers: Record<string, string> = admin) {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: any; errors?: Array<{ message: string }> };
}
const ws = (headers: Record<string, string> = admin) => wsClient(`ws://127.0.0.1:${handle.httpPort}/graphql`, { headers });
const customerToken = (id: number) =>
  new SignJWT({
    'https://hasura.io/jwt/claims': { 'x-hasura-default-role': 'customer', 'x-hasura-allowed-roles': ['customer'], 'x-hasura-user-id': String(id) },
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(JWT_SECRET));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-example-'));
  fs.writeFileSync(path.join(dir, 'permissions.yaml'), PERMISSIONS);
  all = await startWalnatsAll({
    db: 'example',
    schemaSql: `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, org_id int NOT NULL);
     CREATE TABLE orders (
       id bigserial PRIMARY KEY,
       customer_id int NOT NULL REFERENCES customers(id),
       qty int NOT NULL,
       price numeric(12,2),
       note text
     );
     ALTER TABLE orders REPLICA IDENTITY FULL;
     INSERT INTO customers (name, org_id) VALUES ('Ada', 1), ('Grace', 1);`,
    adminSecret: ADMIN,
    env: { WALNATS_JWT_SECRET: JWT_SECRET, WALNATS_PERMISSIONS_FILE: path.join(dir, 'permissions.yaml') },
    readyTimeoutMs: 30_000,
  });
  ({ pgs, db, base, handle } = all);
});

afterAll(async () => {
  await all?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the worked example, with the daemon feeding subscriptions', () => {
  it('every mutation kind arrives as its event, through the daemon', async () => {
    const client = ws();
    const sub = collect(client, 'subscription { orders_events { op old { id qty } new { id qty } cursor commit_time } }');
    await new Promise((r) => setTimeout(r, 300));
    const m = await gql(`mutation {
      insert_orders(objects: [{customer_id: 1, qty: 3, price: "12.50"}, {customer_id: 2, qty: 20}]) { affected_rows returning { id } }
    }`);
    expect(m.errors).toBeUndefined();
    const [a, b] = m.data.insert_orders.returning.map((r: { id: string }) => r.id);
    expect((await gql(`mutation { update_orders_by_pk(pk_columns: {id: ${a}}, _set: {qty: 4}) { id } }`)).errors).toBeUndefined();
    expect((await gql(`mutation { update_orders(where: {customer_id: {_eq: 1}}, _inc: {qty: 1}) { affected_rows } }`)).errors).toBeUndefined();
    expect((await gql(`mutation { delete_orders_by_pk(id: ${b}) { id } }`)).errors).toBeUndefined();
    expect((await gql(`mutation { delete_orders(where: {id: {_eq: ${a}}}) { affected_rows } }`)).errors).toBeUndefined();
    await waitFor('six events', async () => sub.results.length >= 6 || undefined, 60_000, 50);
    expect(sub.errors).toEqual([]);
    const ev = sub.results.map((r) => r.data.orders_events);
    expect(ev.map((e) => [e.op, e.old?.id ?? null, e.old?.qty ?? null, e.new?.id ?? null, e.new?.qty ?? null])).toEqual([
      ['INSERT', null, null, a, 3],
      ['INSERT', null, null, b, 20],
      ['UPDATE', a, 3, a, 4],
      ['UPDATE', a, 4, a, 5],
      ['DELETE', b, 20, null, null],
      ['DELETE', a, 5, null, null],
    ]);
    expect(ev.every((e) => typeof e.cursor === 'string' && typeof e.commit_time === 'string')).toBe(true);
    sub.stop();
    await client.dispose();
  });

  it('a live query re-runs on insert, update and delete made through the daemon', async () => {
    const client = ws();
    const live = collect(client, 'subscription { orders_aggregate(where: {qty: {_gt: 10}}) { aggregate { count } } }');
    const count = () => live.results.at(-1)?.data.orders_aggregate.aggregate.count;
    await waitFor('initial result', async () => (live.results.length >= 1 ? true : undefined), 10_000, 50);
    expect(count()).toBe(0);
    const m = await gql('mutation { insert_orders_one(object: {customer_id: 1, qty: 11}) { id } }');
    const id = m.data.insert_orders_one.id;
    await waitFor('count 1 after insert', async () => (count() === 1 ? true : undefined), 60_000, 50);
    await pgs.sql('UPDATE orders SET qty = 5 WHERE id = $1', [id], db);
    await waitFor('count 0 after update', async () => (count() === 0 ? true : undefined), 60_000, 50);
    await pgs.sql('UPDATE orders SET qty = 50 WHERE id = $1', [id], db);
    await waitFor('count 1 after update back', async () => (count() === 1 ? true : undefined), 60_000, 50);
    await pgs.sql('DELETE FROM orders WHERE id = $1', [id], db);
    await waitFor('count 0 after delete', async () => (count() === 0 ? true : undefined), 60_000, 50);
    live.stop();
    await client.dispose();
  });

  it('snapshot, subscribe from the cursor, disconnect, resume from the last cursor: nothing lost or repeated', async () => {
    const snap = await gql('query { orders(where: {customer_id: {_eq: 1}}) { id qty } walnats_cursor }');
    expect(snap.errors).toBeUndefined();
    const q = 'subscription($c: String) { orders_events(from: $c, where: {customer_id: {_eq: 1}}, ops: [INSERT, UPDATE, DELETE]) { op new { qty } cursor } }';
    let client = ws();
    let sub = collect(client, q, { c: snap.data.walnats_cursor });
    await pgs.sql('INSERT INTO orders (customer_id, qty) VALUES (1, 101), (2, 999), (1, 102)', [], db);
    await waitFor('two events', async () => sub.results.length >= 2 || undefined, 60_000, 50);
    const seen = sub.results.map((r) => r.data.orders_events.new.qty);
    const cursor = sub.results.at(-1)!.data.orders_events.cursor;
    sub.stop();
    await client.dispose();
    // While disconnected, more changes land.
    await pgs.sql('INSERT INTO orders (customer_id, qty) VALUES (1, 103)', [], db);
    await pgs.sql('INSERT INTO orders (customer_id, qty) VALUES (1, 104)', [], db);
    client = ws();
    sub = collect(client, q, { c: cursor });
    await waitFor('the changes made while away', async () => sub.results.length >= 2 || undefined, 60_000, 50);
    await new Promise((r) => setTimeout(r, 500)); // anything repeated would show by now
    expect(seen).toEqual([101, 102]);
    expect(sub.results.map((r) => r.data.orders_events.new.qty)).toEqual([103, 104]);
    sub.stop();
    await client.dispose();
  });

  it('the schema swaps after ALTER TABLE on the daemon schema event, with an open subscription still served', async () => {
    const client = ws();
    const sub = collect(client, 'subscription { customers_events { op new { name } } }');
    await new Promise((r) => setTimeout(r, 300));
    await pgs.sql('ALTER TABLE customers ADD COLUMN vip boolean NOT NULL DEFAULT false', [], db);
    await pgs.sql(`INSERT INTO customers (name, org_id, vip) VALUES ('Hedy', 2, true)`, [], db);
    await waitFor('the new column in the schema', async () => {
      const r = await gql('{ customers(where: {vip: {_eq: true}}) { name vip } }');
      return r.errors ? undefined : r.data.customers;
    }, 60_000, 100);
    await waitFor('the insert on the open subscription', async () => sub.results.some((r) => r.data?.customers_events.new?.name === 'Hedy') || undefined, 60_000, 50);
    expect(sub.errors).toEqual([]);
    sub.stop();
    await client.dispose();
  });

  it('the permission rule: a customer sees, receives and inserts only its own orders, and no note', async () => {
    const token = await customerToken(1);
    const auth = { authorization: `Bearer ${token}` };
    await pgs.sql(`INSERT INTO orders (customer_id, qty, note) VALUES (1, 7, 'mine'), (2, 8, 'theirs')`, [], db);
    const mine = await gql('{ orders { id customer_id } }', undefined, auth);
    expect(mine.errors).toBeUndefined();
    expect(mine.data.orders.length).toBeGreaterThan(0);
    expect(mine.data.orders.every((o: { customer_id: number }) => o.customer_id === 1)).toBe(true);
    const note = await gql('{ orders { note } }', undefined, auth);
    expect(note.errors?.[0].message).toMatch(/note/);

    const client = ws(auth);
    const sub = collect(client, 'subscription { orders_events(ops: [INSERT]) { new { customer_id qty } } }');
    await new Promise((r) => setTimeout(r, 300));
    await pgs.sql('INSERT INTO orders (customer_id, qty) VALUES (2, 201)', [], db);
    const ins = await gql('mutation { insert_orders_one(object: {qty: 202, price: "1.00"}) { customer_id qty } }', undefined, auth);
    expect(ins.errors).toBeUndefined();
    expect(ins.data.insert_orders_one).toEqual({ customer_id: 1, qty: 202 }); // preset from the JWT
    expect((await gql('mutation { insert_orders_one(object: {qty: 0}) { id } }', undefined, auth)).errors).toBeDefined();
    await waitFor('the customer’s own insert', async () => sub.results.length >= 1 || undefined, 60_000, 50);
    await new Promise((r) => setTimeout(r, 500));
    expect(sub.results.map((r) => r.data.orders_events.new)).toEqual([{ customer_id: 1, qty: 202 }]);
    sub.stop();
    await client.dispose();
  });
});
