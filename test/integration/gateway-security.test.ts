import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { createGateway } from '../../src/gateway/index.ts';
import { fixtures, until, useRig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

const SECRET = 'test-hs256-secret-which-is-long-enough-0123456789';
const NS = 'https://hasura.io/jwt/claims';

async function hs(claims: Record<string, unknown>, opts: { exp?: number | string; secret?: string } = {}) {
  return new SignJWT({ [NS]: claims }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(opts.exp ?? '1h').sign(new TextEncoder().encode(opts.secret ?? SECRET));
}
const user = (id: number, extra: Record<string, unknown> = {}) => ({ 'x-hasura-default-role': 'user', 'x-hasura-allowed-roles': ['user'], 'x-hasura-user-id': String(id), ...extra });

describe('gateway security', () => {
  const { s, rig } = useRig({ gateway: { adminSecret: 'adm1n', jwt: { secret: SECRET }, permissions: path.join(fixtures, 'permissions.yaml'), maxDepth: 6, statementTimeoutMs: 300 } });
  let jwks: http.Server;
  let es: Awaited<ReturnType<typeof generateKeyPair>>;
  let rs: Awaited<ReturnType<typeof generateKeyPair>>;
  beforeAll(async () => {
    es = await generateKeyPair('ES256');
    rs = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(es.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = http.createServer((_q, r) => r.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  });
  afterAll(() => {
    jwks?.close();
  });
  const asUser = async (id: number, query: string, variables?: Record<string, unknown>) => (await rig.gql(query, variables, { authorization: `Bearer ${await hs(user(id))}` })).body;
  const admin = { 'x-walnats-admin-secret': 'adm1n' };

  describe('authentication', () => {
    it('refuses requests without credentials when no anonymous role is set', async () => {
      const r = await rig.gql('{ __typename }');
      expect(r.status).toBe(401);
      expect(r.body.errors[0].message).toBe('authentication required');
    });
    it('admin secret: right one is admin, wrong one refused', async () => {
      expect((await rig.gql('{ customers { secret } }', undefined, admin)).body.data.customers).toHaveLength(3);
      const bad = await rig.gql('{ __typename }', undefined, { 'x-walnats-admin-secret': 'nope' });
      expect(bad.status).toBe(401);
    });
    it('expired and forged JWTs are refused', async () => {
      const expired = await hs(user(1), { exp: Math.floor(Date.now() / 1000) - 10 });
      const r1 = await rig.gql('{ orders { id } }', undefined, { authorization: `Bearer ${expired}` });
      expect(r1.status).toBe(401);
      expect(r1.body.errors[0].message).toBe('JWT expired');
      const forged = await hs(user(1), { secret: 'another-secret-another-secret-another-secret!' });
      const r2 = await rig.gql('{ orders { id } }', undefined, { authorization: `Bearer ${forged}` });
      expect(r2.status).toBe(401);
      expect(r2.body.errors[0].message).toBe('invalid JWT');
      // alg "none" and tampered payloads
      const good = await hs(user(1));
      const [h, p, sig] = good.split('.');
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
      expect((await rig.gql('{ __typename }', undefined, { authorization: `Bearer ${none}` })).status).toBe(401);
      const tampered = Buffer.from(p, 'base64url').toString().replace('"x-hasura-user-id":"1"', '"x-hasura-user-id":"2"');
      expect((await rig.gql('{ __typename }', undefined, { authorization: `Bearer ${h}.${Buffer.from(tampered).toString('base64url')}.${sig}` })).status).toBe(401);
      // a role the token does not allow
      const r3 = await rig.gql('{ __typename }', undefined, { authorization: `Bearer ${good}`, 'x-walnats-role': 'orgviewer' });
      expect(r3.status).toBe(403);
    });
    it('RS256 with a public key and ES256 from a JWKS URL', async () => {
      const logger = pino({ level: 'silent' });
      const base = { pgUrl: s.pg.url(rig.db), nc: rig.nc, stream: rig.stream, subjectPrefix: 'walnats', database: rig.db, schemas: ['public'], maxDepth: 10, maxRows: 100, statementTimeoutMs: 1000, introspection: true, production: true, logger, catalogPollMs: 0, permissions: path.join(fixtures, 'permissions.yaml') };
      for (const [jwt, key, alg, kid] of [
        [{ publicKey: await exportSPKI(rs.publicKey) }, rs.privateKey, 'RS256', undefined],
        [{ jwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json` }, es.privateKey, 'ES256', 'k1'],
      ] as const) {
        const gw = await createGateway({ ...base, jwt });
        const server = http.createServer((q, r) => gw.handle(q, r));
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
        const token = await new SignJWT({ [NS]: user(1) }).setProtectedHeader({ alg, kid }).setExpirationTime('1h').sign(key);
        const ok = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ orders { customer_id } }' }) });
        const body = await ok.json();
        expect(body.errors).toBeUndefined();
        expect(body.data.orders.every((o: { customer_id: number }) => o.customer_id === 1)).toBe(true);
        const hsToken = await hs(user(1)); // an HS token must not pass an asymmetric key
        expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${hsToken}` }, body: '{"query":"{__typename}"}' })).status).toBe(401);
        server.close();
        await gw.close();
      }
    });
    it('an open gateway refuses to start in production, as a configuration error (exit 2)', async () => {
      await expect(createGateway({ pgUrl: s.pg.url(rig.db), nc: rig.nc, stream: rig.stream, subjectPrefix: 'walnats', database: rig.db, schemas: ['public'], maxDepth: 10, maxRows: 10, statementTimeoutMs: 1000, introspection: true, production: true, logger: pino({ level: 'silent' }) })).rejects.toThrow(ConfigError);
      await expect(createGateway({ pgUrl: s.pg.url(rig.db), nc: rig.nc, stream: rig.stream, subjectPrefix: 'walnats', database: rig.db, schemas: ['public'], maxDepth: 10, maxRows: 10, statementTimeoutMs: 1000, introspection: true, production: true, logger: pino({ level: 'silent' }) })).rejects.toThrow(/admin_secret: no authentication configured .*refusing to start an open gateway \(NODE_ENV=production\)/);
    });
    it('a WebSocket whose token expires is closed', async () => {
      const token = await hs(user(1), { exp: Math.floor(Date.now() / 1000) + 2 });
      let closed: { code: number; reason: string } | undefined;
      const client = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${token}` } }, (e) => (closed = e));
      const sub = collect(client, 'subscription { orders_events { op } }');
      await until(() => closed, 'socket closed', 10_000);
      expect(closed!.code).toBe(4403);
      expect(closed!.reason).toMatch(/expired/);
      sub.stop();
      await client.dispose();
      // and a socket with a bad token is not accepted
      let refused: { code: number; reason: string } | undefined;
      const c2 = wsClient(rig.wsUrl, { Authorization: 'Bearer junk' }, (e) => (refused = e));
      collect(c2, 'subscription { orders_events { op } }');
      await until(() => refused, 'refused');
      expect(refused!.code).toBe(4403);
      await c2.dispose();
    });
    it('a WebSocket whose token expires in 30 days stays open (longer than one Node timeout)', async () => {
      const token = await hs(user(1), { exp: Math.floor(Date.now() / 1000) + 30 * 24 * 3600 });
      let closed: { code: number; reason: string } | undefined;
      const client = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${token}` } }, (e) => (closed = e));
      const live = collect(client, 'subscription { orders(limit: 1) { id } }');
      await until(() => live.results.length >= 1, 'first live result');
      await new Promise((r) => setTimeout(r, 500));
      expect(closed).toBeUndefined();
      expect(live.errors).toEqual([]);
      live.stop();
      await client.dispose();
    });
    it('a socket opened without credentials takes them per operation (extensions.headers, as GraphiQL sends them)', async () => {
      const client = wsClient(rig.wsUrl);
      const none = collect(client, 'subscription { customers { id } }');
      await until(() => none.errors.length || none.completed, 'refusal without credentials');
      expect(JSON.stringify(none.errors)).toMatch(/authentication required/);
      const wrong = collect(client, 'subscription { customers { id } }', undefined, { headers: { 'x-walnats-admin-secret': 'nope' } });
      await until(() => wrong.errors.length || wrong.completed, 'refusal with a wrong secret');
      expect(JSON.stringify(wrong.errors)).toMatch(/invalid admin secret/);
      const ok = collect(client, 'subscription { customers { id } }', undefined, { headers: { 'x-walnats-admin-secret': 'adm1n' } });
      await until(() => ok.results.length, 'live result as admin');
      expect(ok.results[0].data.customers).toHaveLength(3);
      const u1 = collect(client, 'subscription { orders { customer_id } }', undefined, { headers: { Authorization: `Bearer ${await hs(user(1))}` } });
      await until(() => u1.results.length, 'live result as user 1');
      expect(new Set(u1.results[0].data.orders.map((o: { customer_id: number }) => o.customer_id))).toEqual(new Set([1]));
      ok.stop();
      u1.stop();
      await client.dispose();
    });
  });

  describe('permissions', () => {
    it('row filters and column permissions in queries, nested included', async () => {
      const r = await asUser(1, '{ orders { id customer_id customer { id name } } customers { id orders { id } } }');
      expect(r.errors).toBeUndefined();
      expect(r.data.orders.every((o: { customer_id: number }) => o.customer_id === 1)).toBe(true);
      expect(r.data.customers).toEqual([{ id: 1, orders: expect.any(Array) }]);
      const cols = await asUser(1, '{ orders { id note } }');
      expect(cols.errors[0].message).toMatch(/Cannot query field "note"/);
      const sec = await asUser(1, '{ customers { secret } }');
      expect(sec.errors[0].message).toMatch(/Cannot query field "secret"/);
      const where = await asUser(1, '{ customers(where: {secret: {_eq: "s1"}}) { id } }');
      expect(where.errors[0].message).toMatch(/secret/);
      const agg = await asUser(2, '{ orders_aggregate { aggregate { count } } }');
      expect(agg.data.orders_aggregate.aggregate.count).toBe(1);
    });
    it('mutations: presets, checks, filters, columns', async () => {
      const ins = await asUser(2, 'mutation { insert_orders_one(object: {qty: 4}) { id customer_id qty } }');
      expect(ins.errors).toBeUndefined();
      expect(ins.data.insert_orders_one.customer_id).toBe(2); // preset from the session
      const spoof = await asUser(2, 'mutation { insert_orders_one(object: {qty: 4, customer_id: 1}) { id } }');
      expect(spoof.errors[0].message).toMatch(/customer_id/);
      const check = await asUser(2, 'mutation { insert_orders(objects: [{qty: 6}, {qty: 0}]) { affected_rows } }');
      expect(check.errors[0].extensions.code).toBe('permission-error');
      expect((await rig.sql('SELECT * FROM orders WHERE customer_id = 2 AND qty IN (0, 6)'))).toHaveLength(0);
      const other = await asUser(2, 'mutation { update_orders(where: {}, _set: {qty: 9}) { affected_rows } delete_orders(where: {id: {_eq: 1}}) { affected_rows } }');
      expect(other.data.update_orders.affected_rows).toBe(2); // only its own two rows
      expect(other.data.delete_orders.affected_rows).toBe(0); // order 1 belongs to customer 1
      const col = await asUser(2, 'mutation { update_orders(where: {}, _set: {price: "1"}) { affected_rows } }');
      expect(col.errors[0].message).toMatch(/price/);
      const upCheck = await asUser(2, 'mutation { update_orders(where: {}, _set: {qty: 5000}) { affected_rows } }');
      expect(upCheck.errors[0].extensions.code).toBe('permission-error');
    });
    it('depth and row limits, introspection switch', async () => {
      for (let i = 0; i < 5; i++) await rig.sql('INSERT INTO orders (customer_id, qty) VALUES (3, 1)');
      const org = await hs({ 'x-hasura-default-role': 'orgviewer', 'x-hasura-org-id': '1' });
      const deep = await rig.gql('{ orders { customer { orders { customer { orders { customer { orders { id } } } } } } } }', undefined, { authorization: `Bearer ${org}` });
      expect(deep.body.errors[0].message).toMatch(/query depth \d+ exceeds the limit of 6/);
      // A role with select permissions only has no mutation root: said as a permission error.
      const write = await rig.gql('mutation { delete_orders(where: {}) { affected_rows } }', undefined, { authorization: `Bearer ${org}` });
      expect(write.body.errors).toEqual([expect.objectContaining({ message: 'this role has no mutations: no insert, update or delete permission on any table', extensions: { code: 'permission-error' } })]);
      const u3 = await asUser(3, '{ orders(limit: 100) { id } orders_aggregate { nodes { id } } }');
      expect(u3.data.orders).toHaveLength(3); // role max_rows
      expect(u3.data.orders_aggregate.nodes).toHaveLength(3);
      const intro = await asUser(1, '{ __schema { types { name fields { name } } } t: __type(name: "orders") { name } }');
      // one error, with a code of its own (graphql-js's rule repeated it per nested field)
      expect(intro.errors).toEqual([expect.objectContaining({ message: 'GraphQL introspection is disabled for this role', extensions: { code: 'introspection-disabled' } })]);
      expect((await asUser(1, '{ __typename }')).data).toEqual({ __typename: 'query_root' });
      const adminIntro = await rig.gql('{ __schema { queryType { name } } }', undefined, admin);
      expect(adminIntro.body.data.__schema.queryType.name).toBe('query_root');
    });
    it('statement timeout', async () => {
      const r = await rig.gql('{ slow { x } }', undefined, admin);
      expect(r.body.errors[0].extensions.code).toBe('statement-timeout');
    });
  });

  describe('events', () => {
    it('a role that cannot see a row never receives its insert, update or delete event; columns hold', async () => {
      const token = await hs(user(1));
      const client = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${token}` } });
      const sub = collect(client, 'subscription { orders_events { op old { id customer_id } new { id customer_id qty } } }');
      const bad = collect(client, 'subscription { orders_events { new { note } } }');
      await until(() => bad.errors.length || bad.results.length, 'column error');
      expect(JSON.stringify(bad.errors.length ? bad.errors : bad.results)).toMatch(/Cannot query field .{0,4}note.{0,4} on type .{0,4}orders_event_row/);
      // The error reads as it does over HTTP: yoga's internal `http` extension stays inside.
      const overWs = (bad.errors[0] as Array<{ extensions?: unknown }>)[0];
      const overHttp = await rig.gql('{ orders { note } }', undefined, { Authorization: `Bearer ${token}` });
      expect(overHttp.body.errors[0].extensions).toEqual({ code: 'GRAPHQL_VALIDATION_FAILED' });
      expect(overWs.extensions).toEqual(overHttp.body.errors[0].extensions);
      await until(() => rig.gw.stats().subscriptions >= 1);
      await new Promise((r) => setTimeout(r, 100));
      const mine = { id: 900, customer_id: 1, qty: 1, note: 'secret-note' };
      const theirs = { id: 901, customer_id: 2, qty: 1, note: 'x' };
      await rig.publish({ op: 'c', table: 'orders', after: theirs });
      await rig.publish({ op: 'u', table: 'orders', before: theirs, after: { ...theirs, qty: 2 } });
      await rig.publish({ op: 'd', table: 'orders', before: theirs });
      // moves out of view: customer 1 → 2 is not delivered to customer 1 either
      await rig.publish({ op: 'u', table: 'orders', before: mine, after: { ...mine, customer_id: 2 } });
      await rig.publish({ op: 'c', table: 'orders', after: mine });
      await rig.publish({ op: 'u', table: 'orders', before: null, after: { ...mine, qty: 2 } });
      await rig.publish({ op: 'd', table: 'orders', before: { id: 901, customer_id: 2 } });
      await rig.publish({ op: 'd', table: 'orders', before: { id: 900 } }); // key only: cannot be checked → withheld
      await rig.publish({ op: 'd', table: 'orders', before: mine });
      await until(() => sub.results.length >= 3, 'own events');
      await new Promise((r) => setTimeout(r, 200));
      expect(sub.results.map((r) => r.data.orders_events.op)).toEqual(['INSERT', 'UPDATE', 'DELETE']);
      expect(sub.results.every((r) => JSON.stringify(r).indexOf('"customer_id":2') < 0)).toBe(true);
      expect(JSON.stringify(sub.results)).not.toContain('secret-note');
      sub.stop();
      await client.dispose();
    });
    it('row filters across relationships are checked in Postgres for events', async () => {
      const token = await hs({ 'x-hasura-default-role': 'orgviewer', 'x-hasura-org-id': '2' });
      const client = wsClient(rig.wsUrl, { headers: { Authorization: `Bearer ${token}` } });
      const sub = collect(client, 'subscription { orders_events { op new { id customer_id } } }');
      await until(() => rig.gw.stats().subscriptions >= 1);
      await new Promise((r) => setTimeout(r, 100));
      await rig.publish({ op: 'c', table: 'orders', after: { id: 950, customer_id: 1, qty: 1 } }); // org 1
      await rig.publish({ op: 'c', table: 'orders', after: { id: 951, customer_id: 2, qty: 1 } }); // org 2
      await until(() => sub.results.length >= 1);
      await new Promise((r) => setTimeout(r, 200));
      expect(sub.results.map((r) => r.data.orders_events.new.id)).toEqual(['951']);
      sub.stop();
      await client.dispose();
    });
  });

  describe('SQL injection through every argument kind', () => {
    const evil = [`'; DROP TABLE orders; --`, `1) OR (1=1`, `" OR ""="`, `\\'; SELECT pg_sleep(1); --`, `%' OR '1'='1`, `$1`, '\u0000x'];
    it('values in where, _like, _in, pk, _set, _inc, on_conflict, order_by, limit, session variables and cursors are inert', async () => {
      for (const e of evil) {
        const q = await rig.gql('query($e: String, $l: [String!]) { a: customers(where: {name: {_eq: $e}}) { id } b: customers(where: {name: {_like: $e}}) { id } c: customers(where: {_or: [{name: {_in: $l}}, {email: {_ilike: $e}}]}) { id } }', { e, l: [e] }, admin);
        if (e.includes('\u0000')) {
          expect(q.body.errors?.[0]).toBeDefined(); // Postgres refuses NUL in text: a data error, not an injection
          continue;
        }
        expect(q.body.errors).toBeUndefined();
        expect([...q.body.data.a, ...q.body.data.b, ...q.body.data.c]).toEqual([]);
        const pk = await rig.gql('query($e: Int!) { customers_by_pk(id: $e) { id } }', { e }, admin);
        expect(pk.body.errors[0].message).toMatch(/Int cannot represent/);
        const big = await rig.gql('query($e: bigint) { orders(where: {big: {_eq: $e}}) { id } }', { e }, admin);
        expect(big.body.errors[0].message).toMatch(/bigint cannot represent/);
        const m = await rig.gql('mutation($e: String, $n: numeric) { update_customers(where: {name: {_eq: $e}}, _set: {email: $e}) { affected_rows } update_orders(where: {note: {_eq: $e}}, _inc: {price: $n}) { affected_rows } }', { e, n: e }, admin);
        expect(m.body.errors[0].message).toMatch(/numeric cannot represent/);
        const ins = await rig.gql('mutation($e: String) { insert_customers_one(object: {name: $e, email: $e}) { name } }', { e }, admin);
        expect(ins.body.data.insert_customers_one.name).toBe(e);
        const j = await rig.gql('query($j: jsonb) { orders(where: {meta: {_eq: $j}}) { id } }', { j: { [e]: e } }, admin);
        expect(j.body.data.orders).toEqual([]);
        const tok = await hs(user(1, { 'x-hasura-user-id': e }));
        const sess = await rig.gql('{ orders { id } }', undefined, { authorization: `Bearer ${tok}` });
        expect(sess.body.data?.orders ?? []).toEqual([]); // the session value is a bound parameter
      }
      // identifiers only come from the schema: unknown enum / field names are validation errors
      const ob = await rig.gql('{ orders(order_by: {id: "asc; DROP TABLE orders"}) { id } }', undefined, admin);
      expect(ob.body.errors[0].message).toMatch(/Enum "order_by" cannot represent/);
      const oc = await rig.gql('mutation { insert_items(objects: [{order_id: 1, sku: "Q"}], on_conflict: {constraint: "items_pkey\\" DO NOTHING; --", update_columns: []}) { affected_rows } }', undefined, admin);
      expect(oc.body.errors[0].message).toMatch(/items_constraint/);
      const lim = await rig.gql('{ orders(limit: "1; DROP TABLE orders") { id } }', undefined, admin);
      expect(lim.body.errors[0].message).toMatch(/Int cannot represent/);
      const key = await rig.gql('{ orders(where: {"id\\"; DROP": {_eq: 1}}) { id } }', undefined, admin);
      expect(key.body.errors).toBeDefined();
      const dist = await rig.gql('{ orders(distinct_on: [note, "id; DROP TABLE x"]) { id } }', undefined, admin);
      expect(dist.body.errors).toBeDefined();
      // still all there
      expect((await rig.sql<{ n: number }>('SELECT count(*)::int AS n FROM orders'))[0].n).toBeGreaterThan(3);
      expect((await rig.sql<{ n: number }>('SELECT count(*)::int AS n FROM customers'))[0].n).toBeGreaterThan(2);
    });
  });
});
