/**
 * The HTTP fast path (src/gateway/fast-post.ts) answers exactly as graphql-yoga does: two
 * gateways over identical databases, one with the fast path and one without, get the same
 * requests; status, content type, retry headers and body must be the same, the fast path must
 * have answered the requests it is for, and no statement may run twice when it hands a request
 * to yoga.
 */
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtures, startRig, TEST_JWT_SECRET, useServers, userJwt, type Rig } from '../fixtures/gateway/setup.ts';

interface Req {
  name: string;
  body?: string | object;
  headers?: Record<string, string>;
  method?: string;
  path?: string;
  /** Whether the fast path should answer it (else yoga). */
  fast: boolean;
}

const Q = 'query Orders($c: Int!) { orders(where: {customer_id: {_eq: $c}}, order_by: {id: asc}) { id qty price note customer { id name } } }';
const admin = { 'x-walnats-admin-secret': 'adm1n' };
const json = { 'content-type': 'application/json', accept: 'application/json' };

describe('the HTTP fast path answers as graphql-yoga does', () => {
  const s = useServers();
  let fast: Rig;
  let slow: Rig;
  const gateway = { adminSecret: 'adm1n', jwt: { secret: TEST_JWT_SECRET }, permissions: path.join(fixtures, 'permissions.yaml') };
  beforeAll(async () => {
    fast = await startRig(s, { gateway });
    slow = await startRig(s, { gateway: { ...gateway, fastPath: false } });
  });
  afterAll(async () => {
    await fast?.close();
    await slow?.close();
  });

  const send = async (rig: Rig, r: Req) => {
    const before = rig.gw.stats();
    const res = await fetch(rig.url.replace('/graphql', r.path ?? '/graphql'), {
      method: r.method ?? 'POST',
      headers: { ...json, ...(r.headers?.authorization ? {} : admin), ...r.headers },
      body: r.method === 'GET' ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body),
    });
    const text = await res.text();
    const after = rig.gw.stats();
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      retry: res.headers.get('retry-after'),
      cors: res.headers.get('access-control-allow-origin'),
      text,
      fast: after.fastPath - before.fastPath,
      statements: after.statements - before.statements,
    };
  };

  const compare = async (r: Req) => {
    const a = await send(fast, r);
    const b = await send(slow, r);
    expect({ status: a.status, type: a.type, retry: a.retry, cors: a.cors, text: a.text }, r.name).toEqual({ status: b.status, type: b.type, retry: b.retry, cors: b.cors, text: b.text });
    expect(a.fast, `${r.name}: answered by the fast path`).toBe(r.fast ? 1 : 0);
    expect(a.statements, `${r.name}: statements`).toBe(b.statements);
    return a;
  };

  it.each<Req>([
    { name: 'a raw query', body: { query: Q, variables: { c: 1 } }, fast: true },
    { name: 'accept graphql-response+json', body: { query: Q, variables: { c: 1 } }, headers: { accept: 'application/graphql-response+json' }, fast: true },
    { name: 'accept graphql-response+json, json', body: { query: Q, variables: { c: 1 } }, headers: { accept: 'application/graphql-response+json, application/json' }, fast: true },
    { name: 'accept */*', body: { query: Q, variables: { c: 2 } }, headers: { accept: '*/*' }, fast: true },
    { name: 'an empty accept header', body: { query: Q, variables: { c: 2 } }, headers: { accept: '' }, fast: false },
    { name: 'json with a charset', body: { query: Q, variables: { c: 3 } }, headers: { 'content-type': 'application/json; charset=utf-8' }, fast: true },
    { name: 'operationName picks one of two', body: { query: `${Q} query Other { customers { id } }`, operationName: 'Other' }, fast: true },
    { name: 'null variables and extensions', body: { query: '{ customers(order_by: {id: asc}) { id name } }', variables: null, extensions: null, operationName: null }, fast: true },
    { name: 'an unusual accept', body: { query: Q, variables: { c: 1 } }, headers: { accept: 'text/html' }, fast: false },
    { name: 'an Origin header (CORS)', body: { query: Q, variables: { c: 1 } }, headers: { origin: 'http://example.com' }, fast: false },
    { name: '__typename (graphql-js shapes it)', body: { query: '{ __typename customers(order_by: {id: asc}) { id } }' }, fast: false },
    { name: 'jsonb numbers (graphql-js shapes them)', body: { query: '{ orders(order_by: {id: asc}) { id meta big } }' }, fast: false },
    { name: 'a statement that fails', body: { query: '{ orders(where: {price: {_eq: "1e999999"}}) { id } }' }, fast: false },
    { name: 'malformed JSON', body: '{"query": ', fast: false },
    { name: 'a JSON array', body: '[1]', fast: false },
    { name: 'an unknown parameter', body: { query: Q, variables: { c: 1 }, other: 1 }, fast: false },
    { name: 'query is not a string', body: { query: 5 }, fast: false },
    { name: 'variables not an object', body: { query: Q, variables: [1] }, fast: false },
    { name: 'a syntax error', body: { query: '{ orders { id ' }, fast: false },
    { name: 'an unknown field', body: { query: '{ orders { id nope } }' }, fast: false },
    { name: 'a missing variable', body: { query: Q }, fast: false },
    { name: 'a variable of the wrong type', body: { query: Q, variables: { c: 'x' } }, fast: false },
    { name: 'too deep', body: { query: '{ orders { customer { orders { customer { orders { customer { orders { customer { orders { customer { id } } } } } } } } } } }' }, fast: false },
    { name: 'a mutation', body: { query: 'mutation { update_orders(where: {id: {_eq: -1}}, _set: {qty: 1}) { affected_rows } }' }, fast: false },
    { name: 'an unknown operationName', body: { query: Q, variables: { c: 1 }, operationName: 'Nope' }, fast: false },
    { name: 'a wrong admin secret', body: { query: Q, variables: { c: 1 } }, headers: { 'x-walnats-admin-secret': 'wrong' }, fast: false },
    { name: 'a bad JWT', body: { query: Q, variables: { c: 1 } }, headers: { authorization: 'Bearer x.y.z' }, fast: false },
    { name: 'a query string in the URL', body: { query: Q, variables: { c: 1 } }, path: '/graphql?x=1', fast: false },
    { name: 'GET', method: 'GET', path: `/graphql?query=${encodeURIComponent('{ customers { id } }')}`, fast: false },
  ])('$name', async (r) => {
    await compare(r);
  });

  it('no Accept header at all', async () => {
    const raw = (rig: Rig) =>
      new Promise<{ status: number; type: string | undefined; text: string }>((resolve, reject) => {
        const body = JSON.stringify({ query: Q, variables: { c: 1 } });
        const req = http.request(rig.url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...admin } }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const before = fast.gw.stats().fastPath;
    const a = await raw(fast);
    expect(fast.gw.stats().fastPath - before).toBe(1);
    expect(a).toEqual(await raw(slow));
    expect(a.status).toBe(200);
  });

  it('roles: row filters, column permissions and no introspection for the user role', async () => {
    const user = { authorization: `Bearer ${await userJwt(1)}` };
    await compare({ name: 'user rows', body: { query: '{ orders(order_by: {id: asc}) { id qty price customer { id name } } }' }, headers: user, fast: true });
    await compare({ name: 'user: column not granted', body: { query: '{ orders { id note } }' }, headers: user, fast: false });
    await compare({ name: 'user: introspection', body: { query: '{ __schema { queryType { name } } }' }, headers: user, fast: false });
    // admin may introspect (yoga executes introspection itself)
    await compare({ name: 'admin: introspection', body: { query: '{ __schema { queryType { name } } }' }, fast: false });
  });

  it('a rate-limit refusal is yoga\'s (429, Retry-After), and the token is taken once', async () => {
    const limited = { ...gateway, rateLimit: 2 };
    const f = await startRig(s, { gateway: limited });
    const y = await startRig(s, { gateway: { ...limited, fastPath: false } });
    try {
      const user = { authorization: `Bearer ${await userJwt(1)}` };
      const body = JSON.stringify({ query: '{ orders { id } }' });
      const run = async (rig: Rig) => {
        const out: Array<{ status: number; code?: string; retry: string | null; fast: number }> = [];
        for (let i = 0; i < 6; i++) {
          const before = rig.gw.stats().fastPath;
          const res = await fetch(rig.url, { method: 'POST', headers: { ...json, ...user }, body });
          const b = (await res.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
          out.push({ status: res.status, code: b.errors?.[0]?.extensions?.code, retry: res.headers.get('retry-after'), fast: rig.gw.stats().fastPath - before });
        }
        return out;
      };
      const a = await run(f);
      const b = await run(y);
      // a bucket of 2 (burst) at 2/s: two served, then refused
      expect(a.map((x) => [x.status, x.code, x.retry])).toEqual(b.map((x) => [x.status, x.code, x.retry]));
      expect(a.filter((x) => x.status === 429).length).toBeGreaterThan(0);
      expect(a.filter((x) => x.status === 200).every((x) => x.fast === 1)).toBe(true);
      expect(a.filter((x) => x.status === 429).every((x) => x.fast === 0)).toBe(true);
    } finally {
      await f.close();
      await y.close();
    }
  });
});
