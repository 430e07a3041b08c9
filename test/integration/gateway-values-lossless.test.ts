/**
 * Query results keep values as docs/values.md gives them (the forms of change events): jsonb
 * numbers exactly as Postgres stores them (big integers, long decimals, `1.50`, 401-digit
 * numbers), jsonb number literals of the document with all their digits, BC dates and
 * timestamps in astronomical year numbering (output and input), array lower bounds other than 1.
 * Real Postgres and nats-server (test/fixtures/gateway/setup.ts).
 */
import { describe, expect, it } from 'vitest';
import { useRig } from '../fixtures/gateway/setup.ts';

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
  const post = async (query: string, variables?: Record<string, unknown>) => {
    const r = await fetch(rig.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...admin }, body: JSON.stringify({ query, variables }) });
    const text = await r.text();
    return { status: r.status, text, body: JSON.parse(text) };
  };
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
