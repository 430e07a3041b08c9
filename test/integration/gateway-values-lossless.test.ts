/**
 * Query results keep values as docs/values.md gives them (the forms of change events): jsonb
 * numbers exactly as Postgres stores them (big integers, long decimals, `1.50`, 401-digit
 * numbers), jsonb number literals of the document with all their digits, BC dates and
 * timestamps in astronomical year numbering (output and input), array lower bounds other than 1.
 * Real Postgres and nats-server (test/fixtures/gateway/setup.ts).
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { JsonNumber } from '../../src/gateway/json.ts';
import { until, useRig } from '../fixtures/gateway/setup.ts';

const SCHEMA = `
CREATE TABLE vals (
  id serial PRIMARY KEY,
  d date, ts timestamp, tstz timestamptz, j jsonb, js json,
  ia int[], da date[], tsa timestamptz[], ba bigint[], m2 int[][]
);
`;
const ADMIN = 'adm1n';
const admin = { 'x-walnats-admin-secret': ADMIN };

describe('gateway: lossless values in query results', () => {
  const { rig } = useRig({ sqlText: SCHEMA, gateway: { adminSecret: ADMIN } });
  const post = (query: string, variables?: Record<string, unknown>) => rig.gql(query, variables, admin);
  const insert = async (sql: string) => (await rig.sql<{ id: number }>(sql))[0].id;
  const one = (id: number, cols: string) => post(`query($id: Int!) { vals_by_pk(id: $id) { ${cols} } }`, { id });

  it('a jsonb number of 401 digits (1e400) can be read, digits kept', async () => {
    const id = await insert(`INSERT INTO vals (j) VALUES ('{"e": 1e400}') RETURNING id`);
    const r = await one(id, 'id j');
    expect(r.body.errors).toBeUndefined();
    expect(r.text).toBe(`{"data":{"vals_by_pk":{"id":${id},"j":{"e":1${'0'.repeat(400)}}}}}`);
  });

  it('jsonb numbers come back as Postgres stores them: big integers, long decimals, 1.50, small fractions', async () => {
    const id = await insert(`INSERT INTO vals (j) VALUES ('{"big": 12345678901234567890, "pi": 3.14159265358979323846264338327950288, "neg": -9223372036854775809, "m": 1.50, "small": 0.0000001, "plain": [1, 0.1, -2.5, "12345678901234567890"]}') RETURNING id`);
    const r = await one(id, 'j');
    expect(r.body.errors).toBeUndefined();
    expect(r.text).toBe(`{"data":{"vals_by_pk":{"j":{"m":1.50,"pi":3.14159265358979323846264338327950288,"big":12345678901234567890,"neg":-9223372036854775809,"plain":[1,0.1,-2.5,"12345678901234567890"],"small":0.0000001}}}}`);
    // the same through a list, a nested aggregate and a second read of the same text (prepared)
    const list = await post(`query($id: Int!) { vals(where: {id: {_eq: $id}}) { j } }`, { id });
    expect(list.text).toContain('"big":12345678901234567890');
    expect(list.text).toContain('"m":1.50');
    const again = await post(`query($id: Int!) { vals(where: {id: {_eq: $id}}) { j } }`, { id });
    expect(again.text).toBe(list.text);
  });

  it('json (not jsonb) keeps its numbers as written too', async () => {
    const id = await insert(`INSERT INTO vals (js) VALUES ('{"a": 1.000, "b": 98765432109876543210}') RETURNING id`);
    const r = await one(id, 'js');
    expect(r.text).toBe('{"data":{"vals_by_pk":{"js":{"a":1.000,"b":98765432109876543210}}}}');
  });

  it('a jsonb number literal written in the document is stored with all its digits', async () => {
    const r = await post('mutation { insert_vals_one(object: {j: {n: 12345678901234567890, d: 0.10000000000000000000001, k: [1.50, -0, 7]}}) { id } }');
    expect(r.body.errors).toBeUndefined();
    const [row] = await rig.sql<{ j: string }>('SELECT j::text FROM vals WHERE id = $1', [r.body.data.insert_vals_one.id]);
    expect(row.j).toBe('{"d": 0.10000000000000000000001, "k": [1.50, 0, 7], "n": 12345678901234567890}');
  });
});

describe('gateway: BC dates and timestamps', () => {
  const { rig } = useRig({ sqlText: SCHEMA, gateway: { adminSecret: ADMIN } });
  const post = (query: string, variables?: Record<string, unknown>) => rig.gql(query, variables, admin);

  it('come back in astronomical year numbering, timestamptz in UTC with Z (docs/values.md)', async () => {
    const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (d, ts, tstz, da, tsa) VALUES ('0044-03-15 BC', '0044-03-15 12:00:00.5 BC', '0044-03-15 12:00:00+00 BC', '{0001-12-31 BC,2024-02-29,NULL}', '{4713-01-01 00:00:00+00 BC}') RETURNING id`);
    const r = await post(`query($id: Int!) { vals_by_pk(id: $id) { d ts tstz da tsa } }`, { id });
    expect(r.text).toBe('{"data":{"vals_by_pk":{"d":"-0043-03-15","ts":"-0043-03-15T12:00:00.5","tstz":"-0043-03-15T12:00:00Z","da":["0000-12-31","2024-02-29",null],"tsa":["-4712-01-01T00:00:00Z"]}}}');
  });

  it('are accepted in that form as input (variables and literals) and mean the BC dates', async () => {
    const ins = await post(`mutation($o: vals_insert_input!) { insert_vals_one(object: $o) { id d ts tstz da } }`, {
      o: { d: '-0043-03-15', ts: '-0043-03-15T12:00:00', tstz: '-0043-03-15T13:00:00+01:00', da: ['0000-12-31', '-4712-01-01'] },
    });
    const body = JSON.parse(ins.text);
    expect(body.errors).toBeUndefined();
    expect(body.data.insert_vals_one).toMatchObject({ d: '-0043-03-15', ts: '-0043-03-15T12:00:00', tstz: '-0043-03-15T12:00:00Z', da: ['0000-12-31', '-4712-01-01'] });
    const [row] = await rig.sql<{ d: string; ts: string; da: string }>(`SELECT d::text, ts::text, da::text FROM vals WHERE id = $1`, [body.data.insert_vals_one.id]);
    expect(row).toEqual({ d: '0044-03-15 BC', ts: '0044-03-15 12:00:00 BC', da: '{"0001-12-31 BC","4713-01-01 BC"}' });
    const lit = JSON.parse((await post(`mutation { insert_vals_one(object: {d: "-0043-03-15"}) { d } }`)).text);
    expect(lit.data.insert_vals_one.d).toBe('-0043-03-15');
    const where = JSON.parse((await post(`{ vals(where: {d: {_eq: "-0043-03-15"}}) { d } }`)).text);
    expect(where.data.vals.length).toBeGreaterThan(0);
  });
});

describe('gateway: arrays whose lower bounds are not 1', () => {
  const { rig } = useRig({ sqlText: SCHEMA, gateway: { adminSecret: ADMIN } });
  const post = (query: string, variables?: Record<string, unknown>) => rig.gql(query, variables, admin);

  it('keep their bounds as {"lower_bounds":[…],"values":[…]}; bounds of 1 stay plain arrays', async () => {
    const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (ia, m2, ba, tsa, da) VALUES ('[0:1]={1,2}', '[2:3][1:1]={{1},{2}}', '[-2:-1]={9223372036854775807,NULL}', '[0:0]={2024-02-29 12:00:00+00}', '{2024-02-29}') RETURNING id`);
    const r = await post(`query($id: Int!) { vals_by_pk(id: $id) { ia m2 ba tsa da } }`, { id });
    expect(r.text).toBe('{"data":{"vals_by_pk":{"ia":{"lower_bounds":[0],"values":[1,2]},"m2":{"lower_bounds":[2,1],"values":[[1],[2]]},"ba":{"lower_bounds":[-2],"values":["9223372036854775807",null]},"tsa":{"lower_bounds":[0],"values":["2024-02-29T12:00:00Z"]},"da":["2024-02-29"]}}}');
  });
});

describe('gateway: jsonb numbers exact over WebSockets and in mutation results', () => {
  const { rig } = useRig({ sqlText: SCHEMA, gateway: { adminSecret: ADMIN } });
  const E400 = `1${'0'.repeat(400)}`;
  const J = `{"big": 12345678901234567890, "pi": 3.14159265358979323846264338327950288, "m": 1.50, "e": 1e400}`;
  /** The digits as Postgres keeps them: each must be in the raw text (JSON.parse would round them). */
  const expectExact = (text: string) => {
    expect(text).toContain('"big":12345678901234567890');
    expect(text).toContain('"pi":3.14159265358979323846264338327950288');
    expect(text).toContain('"m":1.50');
    expect(text).toContain(`"e":${E400}`);
  };

  /** A graphql-transport-ws client keeping the raw text of every frame. */
  const rawSocket = async () => {
    const ws = new WebSocket(rig.wsUrl, 'graphql-transport-ws');
    const frames: string[] = [];
    ws.on('message', (d) => void frames.push(String(d)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'connection_init', payload: admin }));
    await until(() => frames.some((f) => JSON.parse(f).type === 'connection_ack'), 'connection_ack');
    const subscribe = (id: string, query: string) => ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
    const nexts = (id: string) => frames.filter((f) => f.startsWith(`{"id":${JSON.stringify(id)},"type":"next"`) || (JSON.parse(f).id === id && JSON.parse(f).type === 'next'));
    return { ws, frames, subscribe, nexts };
  };

  it('a live query over graphql-ws sends jsonb numbers with their exact digits', async () => {
    const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (j) VALUES ('${J}') RETURNING id`);
    const s = await rawSocket();
    try {
      s.subscribe('live', `subscription { vals(where: {id: {_eq: ${id}}}) { id j } }`);
      const [frame] = await until(() => (s.nexts('live').length ? s.nexts('live') : null), 'live query result');
      expectExact(frame);
      // a query over the same socket too (graphql-ws execute)
      s.subscribe('q', `query { vals_by_pk(id: ${id}) { j } }`);
      const [q] = await until(() => (s.nexts('q').length ? s.nexts('q') : null), 'query result');
      expectExact(q);
      await until(() => s.frames.some((f) => f === '{"id":"q","type":"complete"}'), 'query complete');
      // results without such numbers are graphql-ws's own frames, as before
      const [{ id: plain }] = await rig.sql<{ id: number }>(`INSERT INTO vals (j) VALUES ('{"a": 1.5}') RETURNING id`);
      s.subscribe('plain', `subscription { vals(where: {id: {_eq: ${plain}}}) { j } }`);
      const [p] = await until(() => (s.nexts('plain').length ? s.nexts('plain') : null), 'plain result');
      expect(p).toBe('{"id":"plain","type":"next","payload":{"data":{"vals":[{"j":{"a":1.5}}]}}}');
    } finally {
      s.ws.close();
    }
  });

  it('a _events subscription over graphql-ws (shared and from a cursor) gets the jsonb numbers of new/old exactly', async () => {
    const s = await rawSocket();
    try {
      s.subscribe('ev', 'subscription { vals_events { op old { id j } new { id j } } }');
      s.subscribe('ev2', 'subscription { vals_events { op new { j } } }');
      await until(() => rig.gw.stats().subscriptions >= 2, 'subscriptions');
      const j = { big: new JsonNumber('12345678901234567890'), e: new JsonNumber(E400), m: new JsonNumber('1.50'), pi: new JsonNumber('3.14159265358979323846264338327950288') };
      const seq = await rig.publish({ op: 'u', table: 'vals', before: { id: 7, j }, after: { id: 7, j, ba: [new JsonNumber('9223372036854775807')] } });
      await rig.publish({ op: 'c', table: 'vals', after: { id: 8, j: { a: 1.5 } } });
      const [ev] = await until(() => (s.nexts('ev').length >= 2 ? s.nexts('ev') : null), 'events');
      const [, plain] = s.nexts('ev');
      const body = ev.slice(ev.indexOf('"new":'));
      expectExact(body);
      expectExact(ev.slice(ev.indexOf('"old":'), ev.indexOf('"new":')));
      expect(plain).toBe('{"id":"ev","type":"next","payload":{"data":{"vals_events":{"op":"INSERT","old":null,"new":{"id":8,"j":{"a":1.5}}}}}}');
      const [ev2] = await until(() => (s.nexts('ev2').length ? s.nexts('ev2') : null), 'events (second subscriber)');
      expectExact(ev2);
      // a subscription from a cursor is not shared: graphql-ws's own iteration
      s.subscribe('from', `subscription { vals_events(from: "w1${Buffer.from(String(seq - 1)).toString('base64url')}") { new { j } } }`);
      const [f] = await until(() => (s.nexts('from').length ? s.nexts('from') : null), 'events from a cursor');
      expectExact(f);
    } finally {
      s.ws.close();
    }
  });

  it('an insert mutation returns jsonb numbers exactly in returning', async () => {
    const r = await fetch(rig.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...admin },
      body: JSON.stringify({ query: 'mutation { insert_vals(objects: [{j: {big: 12345678901234567890, pi: 3.14159265358979323846264338327950288, m: 1.50, e: 1e400}}]) { affected_rows returning { j } } }' }),
    });
    const text = await r.text();
    expect(JSON.parse(text).errors).toBeUndefined();
    expectExact(text);
    expect(text).toContain('"affected_rows":1');
  });
});
