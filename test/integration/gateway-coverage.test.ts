/**
 * Gateway behaviour no other suite pins down: update `set` presets, lossless values through a
 * mutation and back, what `returning` may show a role, hostile values outside `where`, the global
 * row cap and the anonymous role. Real Postgres and nats-server (test/fixtures/gateway/setup.ts).
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useRig, actingAs } from '../fixtures/gateway/setup.ts';
import { builtinType, pinnedOptionsString, textToJson } from '../../src/values/index.ts';
import type { PermissionsSpec } from '../../src/gateway/permissions.ts';

const SCHEMA = `
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, secret text);
CREATE TABLE docs (
  id serial PRIMARY KEY,
  owner_id int NOT NULL REFERENCES users(id),
  title text NOT NULL,
  body text,
  secret text,
  score int NOT NULL DEFAULT 0,
  CONSTRAINT docs_title_key UNIQUE (title)
);
CREATE TABLE kids (id serial PRIMARY KEY, doc_id int NOT NULL REFERENCES docs(id), name text NOT NULL);
CREATE TABLE vals (
  id serial PRIMARY KEY,
  u uuid, d date, t time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
  n numeric, big bigint, j jsonb,
  ia int[], ta text[], da date[], tsa timestamptz[], na numeric[], ba bigint[], ua uuid[], m2 int[][]
);
INSERT INTO users VALUES (1, 'Ann', 'ann-secret'), (2, 'Ben', 'ben-secret');
INSERT INTO docs (owner_id, title, body, secret, score) VALUES
  (1, 'a1', 'body a1', 'S-a1', 1), (1, 'a2', 'body a2', 'S-a2', 0),
  (2, 'b1', 'body b1', 'S-b1', 5), (2, 'b2', 'body b2', 'S-b2', 0);
INSERT INTO kids (doc_id, name) SELECT 1, 'k' || g FROM generate_series(1, 8) g;
`;

const ADMIN = 'adm1n';
const admin = { 'x-walnats-admin-secret': ADMIN };
const as = (role: string, userId?: number) => actingAs(ADMIN, role, userId);

const permissions: PermissionsSpec = {
  roles: {
    editor: {
      tables: {
        users: { select: { columns: ['id', 'name'] } },
        docs: {
          select: { columns: ['id', 'owner_id', 'title', 'score'], filter: { owner_id: { _eq: 'X-Hasura-User-Id' } } },
          insert: { columns: ['owner_id', 'title', 'body', 'secret', 'score'] },
          update: {
            columns: ['owner_id', 'title', 'score'],
            filter: { owner_id: { _eq: 'X-Hasura-User-Id' } },
            check: { score: { _lt: 100 } },
            set: { owner_id: 'X-Hasura-User-Id', body: 'edited by the preset' },
          },
        },
        kids: { select: { columns: ['id', 'name', 'doc_id'] } },
      },
    },
    anon: {
      tables: {
        docs: { select: { columns: ['id', 'title'], filter: { score: { _gt: 0 } } } },
        kids: { select: { columns: ['id', 'name'] } },
      },
    },
    wide: { max_rows: 50, tables: { kids: { select: { columns: '*' } } } },
  },
};

describe('gateway coverage', () => {
  const { s, rig } = useRig({ sqlText: SCHEMA, gateway: { adminSecret: ADMIN, anonymousRole: 'anon', permissions, maxRows: 5 } });

  /** The response as text too, to show that a value appears nowhere in it. */
  const post = (query: string, variables?: Record<string, unknown>, headers: Record<string, string> = admin) => rig.gql(query, variables, headers);
  const docsTable = () => rig.sql<Record<string, unknown>>('SELECT id, owner_id, title, body, secret, score FROM docs ORDER BY id');

  describe('update permission set presets', () => {
    it('update_x stores the preset, not the _set or _inc value the client sent, and touches only rows of the filter', async () => {
      const before = await docsTable();
      const r = await post('mutation { update_docs(where: {}, _set: {owner_id: 2, title: "x"}, _inc: {score: 1}) { affected_rows returning { id owner_id score } } }', undefined, as('editor', 1));
      // title is unique: two rows cannot both become "x"
      expect(r.body.errors?.[0].extensions.code).toBe('constraint-violation');
      expect(await docsTable()).toEqual(before);
      const ok = await post('mutation { update_docs(where: {}, _set: {owner_id: 2}, _inc: {score: 1}) { affected_rows returning { id owner_id score } } }', undefined, as('editor', 1));
      expect(ok.body.errors).toBeUndefined();
      expect(ok.body.data.update_docs.affected_rows).toBe(2);
      expect(ok.body.data.update_docs.returning).toEqual(expect.arrayContaining([{ id: 1, owner_id: 1, score: 2 }, { id: 2, owner_id: 1, score: 1 }]));
      const after = await docsTable();
      expect(after.filter((d) => d.owner_id === 1).map((d) => [d.id, d.body])).toEqual([[1, 'edited by the preset'], [2, 'edited by the preset']]);
      expect(after.filter((d) => d.owner_id === 2)).toEqual(before.filter((d) => d.owner_id === 2)); // Ben's rows untouched
      // _inc on the preset column is overridden by the preset too
      const inc = await post('mutation { update_docs(where: {id: {_eq: 1}}, _inc: {owner_id: 1}) { affected_rows returning { owner_id } } }', undefined, as('editor', 1));
      expect(inc.body.data.update_docs).toEqual({ affected_rows: 1, returning: [{ owner_id: 1 }] });
    });

    it('update_x aimed at another user\'s rows affects none of them', async () => {
      const before = await docsTable();
      const r = await post('mutation { update_docs(where: {owner_id: {_eq: 2}}, _set: {title: "stolen"}) { affected_rows returning { id } } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.update_docs).toEqual({ affected_rows: 0, returning: [] });
      expect(await docsTable()).toEqual(before);
    });

    it('update_x_by_pk stores the preset over _set, and is null for a row outside the filter, which stays as it was', async () => {
      const own = await post('mutation { update_docs_by_pk(pk_columns: {id: 2}, _set: {owner_id: 2, title: "a2-renamed"}) { id owner_id title } }', undefined, as('editor', 1));
      expect(own.body.errors).toBeUndefined();
      expect(own.body.data.update_docs_by_pk).toEqual({ id: 2, owner_id: 1, title: 'a2-renamed' });
      expect((await rig.sql('SELECT owner_id, title, body FROM docs WHERE id = 2'))[0]).toEqual({ owner_id: 1, title: 'a2-renamed', body: 'edited by the preset' });
      const before = await docsTable();
      const theirs = await post('mutation { update_docs_by_pk(pk_columns: {id: 3}, _set: {title: "b1-stolen"}) { id title } }', undefined, as('editor', 1));
      expect(theirs.body.errors).toBeUndefined();
      expect(theirs.body.data.update_docs_by_pk).toBeNull();
      expect(await docsTable()).toEqual(before);
    });

    it('the preset comes from the session of the request: another user gets their own id', async () => {
      const r = await post('mutation { update_docs_by_pk(pk_columns: {id: 4}, _set: {owner_id: 1, title: "b2-renamed"}) { id owner_id } }', undefined, as('editor', 2));
      expect(r.body.data.update_docs_by_pk).toEqual({ id: 4, owner_id: 2 });
      const missing = await post('mutation { update_docs_by_pk(pk_columns: {id: 4}, _set: {title: "b2-x"}) { id } }', undefined, as('editor'));
      expect(missing.body.errors[0].message).toMatch(/missing session variable/i);
      expect((await rig.sql('SELECT title FROM docs WHERE id = 4'))[0]).toEqual({ title: 'b2-renamed' });
    });
  });

  describe('mutation returning and select permissions', () => {
    it('a column the role may insert but not select is absent from returning: a validation error, nothing written, the value nowhere in the response', async () => {
      const before = await docsTable();
      for (const q of [
        'mutation { insert_docs_one(object: {owner_id: 1, title: "r1", secret: "TOPSECRET-1"}) { id secret } }',
        'mutation { insert_docs(objects: [{owner_id: 1, title: "r1", secret: "TOPSECRET-1"}]) { returning { id secret } } }',
        'mutation { insert_docs(objects: [{owner_id: 1, title: "r1", secret: "TOPSECRET-1", body: "TOPSECRET-1"}]) { returning { id body } } }',
        'mutation { update_docs(where: {id: {_eq: 1}}, _set: {title: "r1"}) { returning { secret } } }',
        'mutation { insert_docs_one(object: {owner_id: 1, title: "r1", secret: "TOPSECRET-1"}) { id owner { secret } } }',
      ]) {
        const r = await post(q, undefined, as('editor', 1));
        expect(r.status).toBeLessThan(500);
        expect(r.body.data ?? null).toBeNull();
        expect(r.body.errors[0].message).toMatch(/Cannot query field "(secret|body)"/);
        expect(r.text).not.toContain('TOPSECRET');
        expect(r.text).not.toContain('secret-');
      }
      expect(await docsTable()).toEqual(before);
      // the insert itself is allowed: the column is written, and only the admin reads it back
      const ok = await post('mutation { insert_docs_one(object: {owner_id: 1, title: "r1", secret: "TOPSECRET-1"}) { id title } }', undefined, as('editor', 1));
      expect(ok.body.errors).toBeUndefined();
      expect(ok.text).not.toContain('TOPSECRET');
      expect((await rig.sql('SELECT secret FROM docs WHERE id = $1', [ok.body.data.insert_docs_one.id]))[0]).toEqual({ secret: 'TOPSECRET-1' });
    });

    it('returning lists only the written rows the select filter lets the role see; affected_rows counts them all', async () => {
      const r = await post(`mutation { insert_docs(objects: [{owner_id: 1, title: "mine-1", secret: "TOPSECRET-2"}, {owner_id: 2, title: "theirs-HIDDEN", secret: "TOPSECRET-3"}]) {
        affected_rows returning { id owner_id title owner { name } } } }`, undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs.affected_rows).toBe(2);
      expect(r.body.data.insert_docs.returning).toEqual([{ id: expect.any(Number), owner_id: 1, title: 'mine-1', owner: { name: 'Ann' } }]);
      expect(r.text).not.toContain('HIDDEN');
      expect(r.text).not.toContain('TOPSECRET');
      // the _one form: the row is written, the response is null
      const one = await post('mutation { insert_docs_one(object: {owner_id: 2, title: "theirs-HIDDEN-2"}) { id title } }', undefined, as('editor', 1));
      expect(one.body.errors).toBeUndefined();
      expect(one.body.data.insert_docs_one).toBeNull();
      expect(one.text).not.toContain('HIDDEN');
      expect(await rig.sql("SELECT owner_id FROM docs WHERE title LIKE 'theirs-HIDDEN%' ORDER BY title")).toEqual([{ owner_id: 2 }, { owner_id: 2 }]);
    });

    it('an upsert whose conflicting row is outside the update filter changes nothing and returns nothing', async () => {
      const before = await docsTable();
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "b1", score: 7}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows returning { id title score } } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs).toEqual({ affected_rows: 0, returning: [] });
      expect(await docsTable()).toEqual(before);
    });

    // Regression (was a bug): on_conflict ... DO UPDATE (compileInsert in src/gateway/mutate.ts) applies the update
    // permission's filter but not its `set` presets: the upsert below moves the editor's own row
    // to user 2, although the preset says owner_id := X-Hasura-User-Id (update_docs stores 1).
    it('an upsert that updates an existing row applies the update permission\'s set presets, as update_x does', async () => {
      const id = (await rig.sql<{ id: number }>("INSERT INTO docs (owner_id, title, score) VALUES (1, 'upsert-preset', 1) RETURNING id"))[0].id;
      const r = await post('mutation { insert_docs(objects: [{owner_id: 2, title: "upsert-preset"}], on_conflict: {constraint: docs_title_key, update_columns: [owner_id]}) { affected_rows } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect((await rig.sql('SELECT owner_id, body FROM docs WHERE id = $1', [id]))[0]).toEqual({ owner_id: 1, body: 'edited by the preset' });
    });

    // Regression (was a bug): nor its `check`: the upsert stores score 500 where the update check says score < 100
    // (update_docs with _set: {score: 500} is refused with permission-error and rolled back).
    it('an upsert that updates an existing row is held to the update permission\'s check, as update_x is', async () => {
      const id = (await rig.sql<{ id: number }>("INSERT INTO docs (owner_id, title, score) VALUES (1, 'upsert-check', 1) RETURNING id"))[0].id;
      const viaUpdate = await post('mutation { update_docs_by_pk(pk_columns: {id: ' + id + '}, _set: {score: 500}) { id } }', undefined, as('editor', 1));
      expect(viaUpdate.body.errors[0].extensions.code).toBe('permission-error');
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "upsert-check", score: 500}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows } }', undefined, as('editor', 1));
      expect((await rig.sql('SELECT score FROM docs WHERE id = $1', [id]))[0]).toEqual({ score: 1 });
      expect(r.body.errors?.[0].extensions.code).toBe('permission-error');
    });
  });

  describe('lossless values through a mutation and back', () => {
    const COLS = ['id', 'u', 'd', 't', 'ttz', 'ts', 'tstz', 'iv', 'n', 'big', 'j', 'ia', 'ta', 'da', 'tsa', 'na', 'ba', 'ua', 'm2'];

    /** Rows as Postgres prints them, on a connection with walnats's pinned output settings (docs/values.md). */
    const printed = async (sql: string, params: unknown[] = []) => {
      const c = new pg.Client({ connectionString: s.pg.url(rig.db), options: pinnedOptionsString(), types: { getTypeParser: () => (v: string) => v } });
      await c.connect();
      try {
        const r = await c.query(sql, params);
        return { fields: r.fields, rows: r.rows as Array<Record<string, string | null>> };
      } finally {
        await c.end();
      }
    };

    /**
     * The response text the gateway owes for `{ vals_by_pk(id) { …COLS } }`: each value as docs/values.md
     * maps Postgres's text, except int8 (and its arrays), which GraphQL's `bigint` carries as strings of
     * the exact digits (docs/gateway.md, Types). jsonb is compared without the blanks Postgres prints.
     */
    const owed = async (id: number, root = 'vals_by_pk') => {
      const { fields, rows } = await printed(`SELECT ${COLS.join(', ')} FROM vals WHERE id = $1`, [id]);
      const parts = fields.map((f) => {
        const text = rows[0][f.name];
        let json: string;
        if (text === null) json = 'null';
        else if (f.dataTypeID === 20) json = JSON.stringify(text);
        else if (f.dataTypeID === 1016) json = JSON.stringify(text.slice(1, -1).split(',').map((x) => (x === 'NULL' ? null : x)));
        else json = compact(textToJson(text, builtinType(f.dataTypeID)!));
        return `${JSON.stringify(f.name)}:${json}`;
      });
      return `{"data":{"${root}":{${parts.join(',')}}}}`;
    };

    const INSERT = `mutation($o: vals_insert_input!) { insert_vals_one(object: $o) { ${COLS.join(' ')} } }`;
    const readBack = (id: number) => post(`query($id: Int!) { vals_by_pk(id: $id) { ${COLS.join(' ')} } }`, { id });

    it('uuid, date, time, timetz, timestamp, timestamptz, interval, numeric, bigint beyond 2^53, jsonb and arrays come back byte-exact', async () => {
      const o = {
        u: 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
        d: '2024-02-29',
        t: '13:45:00.5',
        ttz: '13:45:00.123-09:30:15',
        ts: '2024-02-29T13:45:00.123456',
        tstz: '2024-02-29T13:45:00.123456+01:00',
        iv: 'P1Y2M3DT4H5M6.789S',
        n: '123456789012345678901234567890.123456789012345678900',
        big: '9223372036854775807',
        j: { a: 1.5, s: 'x\u2028"\\ é 😀', arr: [null, true, 0.1, -0], nested: { k: 'v', e: {} }, big: 9007199254740991 },
        ia: [1, null, 3],
        ta: ['a b', 'c,d', '"q"', 'back\\slash', 'NULL', null, '', '{x}', 'é'],
        da: ['2024-02-29', null, 'infinity'],
        tsa: ['2024-02-29T13:45:00+01:00', null],
        na: ['1.50', '-0.000000000000000000001', 'NaN'],
        ba: ['9223372036854775807', '-9223372036854775808', null],
        ua: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
        m2: [[1, 2], [3, null]],
      };
      const ins = await post(INSERT, { o });
      expect(ins.body.errors).toBeUndefined();
      const id = ins.body.data.insert_vals_one.id as number;
      expect(ins.text).toBe(await owed(id, 'insert_vals_one'));
      const back = await readBack(id);
      expect(back.text).toBe(await owed(id));
      // spot checks of what that means
      expect(back.body.data.vals_by_pk).toMatchObject({ u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', tstz: '2024-02-29T12:45:00.123456Z', n: o.n, big: o.big, ba: o.ba, iv: 'P1Y2M3DT4H5M6.789S' });
    });

    it('edge values: extremes of bigint and numeric, infinities, negative and zero intervals, years beyond 9999', async () => {
      const o = {
        d: '-infinity', ts: '294276-12-31T23:59:59.999999', tstz: 'infinity', iv: 'P-1Y-2M3DT-4H-5M-6.7S',
        n: 'NaN', big: '-9223372036854775808', t: '24:00:00', ttz: '00:00:00+14:59', ia: [], ta: [], j: [],
      };
      const ins = await post(INSERT, { o });
      expect(ins.body.errors).toBeUndefined();
      const id = ins.body.data.insert_vals_one.id as number;
      expect((await readBack(id)).text).toBe(await owed(id));
      const zero = await post(INSERT, { o: { iv: 'PT0S', n: '0.00000', big: 0, j: 'just a string' } });
      const zid = zero.body.data.insert_vals_one.id as number;
      expect((await readBack(zid)).text).toBe(await owed(zid));
    });

    it('filters on them: _eq on uuid (any case) and date, _gt on timestamptz in another zone, to the microsecond; _eq on bigint beyond 2^53', async () => {
      const o = { u: '0000000A-0000-4000-8000-00000000000B', d: '1999-12-31', tstz: '2030-01-01T01:00:00.000001+01:00', big: '9007199254740993' };
      const ins = await post(INSERT, { o });
      const id = ins.body.data.insert_vals_one.id as number;
      const ids = async (where: Record<string, unknown>) => {
        const r = await post('query($w: vals_bool_exp) { vals(where: $w, order_by: {id: asc}) { id } }', { w: where });
        expect(r.body.errors).toBeUndefined();
        return r.body.data.vals.map((x: { id: number }) => x.id);
      };
      expect(await ids({ u: { _eq: '0000000a-0000-4000-8000-00000000000b' } })).toEqual([id]);
      expect(await ids({ u: { _eq: o.u } })).toEqual([id]);
      expect(await ids({ u: { _in: ['0000000a-0000-4000-8000-00000000000c'] } })).toEqual([]);
      expect(await ids({ d: { _eq: '1999-12-31' } })).toEqual([id]);
      expect(await ids({ d: { _eq: '2000-01-01' } })).toEqual([]);
      // (the row with tstz = infinity, written by the test above, is later than everything)
      expect(await ids({ tstz: { _gt: '2030-01-01T00:00:00Z' } })).toContain(id);
      expect(await ids({ tstz: { _gt: '2030-01-01T00:00:00.000001Z' } })).not.toContain(id); // the same instant, written in UTC
      expect(await ids({ tstz: { _gt: '2029-12-31T19:00:00-05:00' } })).toContain(id);
      expect(await ids({ tstz: { _gt: '2029-12-31T19:00:00.000001-05:00' } })).not.toContain(id);
      expect(await ids({ tstz: { _eq: '2030-01-01T00:00:00.000001Z' } })).toEqual([id]);
      expect(await ids({ big: { _eq: '9007199254740993' } })).toEqual([id]);
      expect(await ids({ big: { _eq: '9007199254740992' } })).toEqual([]); // the neighbour a float would confuse it with
      const r = await readBack(id);
      expect(r.body.data.vals_by_pk.tstz).toBe('2030-01-01T00:00:00.000001Z');
    });

    // Regression (was a bug): BC dates and timestamps come out of queries in neither documented form. docs/values.md
    // (and docs/gateway.md: `_events` carry "these same GraphQL forms") give astronomical years,
    // `"-0043-03-15"`, `"-0043-03-15T12:00:00"`, `"-0043-03-15T12:00:00Z"`; a query returns
    // Postgres's JSON text `"0044-03-15 BC"`, `"0044-03-15T12:00:00 BC"` and, for timestamptz,
    // `"0044-03-15T12:00:00+00:00 BC"` (not even UTC with `Z`, which docs/gateway.md promises for
    // every timestamptz): the `Z` normalization in src/gateway/scalars.ts only matches a trailing `+00`.
    it('BC dates and timestamps come back in astronomical year numbering, timestamptz with Z (docs/values.md)', async () => {
      const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (d, ts, tstz, da) VALUES ('0044-03-15 BC', '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00+00 BC', '{0001-12-31 BC}') RETURNING id`);
      const r = await readBack(id);
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.vals_by_pk.tstz).toMatch(/Z$/);
      expect(r.text).toBe(await owed(id));
      expect(r.body.data.vals_by_pk).toMatchObject({ d: '-0043-03-15', ts: '-0043-03-15T12:00:00', tstz: '-0043-03-15T12:00:00Z', da: ['0000-12-31'] });
    });

    // Regression (was a bug): jsonb numbers lose precision in queries. parseLosslessJson (src/gateway/json.ts) turns an
    // integer beyond 2^53 into a JSON *string* ("12345678901234567890", a different JSON value) and
    // rounds a decimal with more digits than a double holds (3.141592653589793); docs/gateway.md:
    // "Values never lose precision", jsonb is "the JSON value" (docs/values.md: spliced as printed).
    it('jsonb numbers beyond a double (big integers, long decimals) come back as the same JSON numbers', async () => {
      const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (j) VALUES ('{"big": 12345678901234567890, "pi": 3.14159265358979323846264338327950288, "neg": -9223372036854775809}') RETURNING id`);
      const r = await post('query($id: Int!) { vals_by_pk(id: $id) { j } }', { id });
      expect(r.body.errors).toBeUndefined();
      expect(r.text).toContain('"big":12345678901234567890');
      expect(r.text).toContain('"pi":3.14159265358979323846264338327950288');
      expect(r.text).toContain('"neg":-9223372036854775809');
    });

    // Regression (was a bug): a number literal in a jsonb argument is read through Number() (jsonScalar's parseLiteral
    // in src/gateway/scalars.ts), so `{n: 12345678901234567890}` is stored as 12345678901234567000,
    // though the document itself carries every digit.
    it('a jsonb number literal written in the document is stored with all its digits', async () => {
      const r = await post('mutation { insert_vals_one(object: {j: {n: 12345678901234567890, d: 0.10000000000000000000001}}) { id } }');
      expect(r.body.errors).toBeUndefined();
      const [row] = await rig.sql<{ j: string }>('SELECT j::text FROM vals WHERE id = $1', [r.body.data.insert_vals_one.id]);
      expect(row.j).toBe('{"d": 0.10000000000000000000001, "n": 12345678901234567890}');
    });

    // Regression (was a bug): a jsonb number of more than 400 characters (jsonb prints 1e400 as 401 digits) makes every
    // query that reads the row fail with "Unexpected error." (logged: SyntaxError "JSON: expected ','
    // or '}'"): parseLosslessJson matches a number in text.slice(i, i + 400) only.
    it('a jsonb value holding a very long number (1e400) can be read', async () => {
      const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (j) VALUES ('{"e": 1e400}') RETURNING id`);
      const r = await post('query($id: Int!) { vals_by_pk(id: $id) { id j } }', { id });
      expect(r.body.errors).toBeUndefined();
      expect(r.text).toBe(`{"data":{"vals_by_pk":{"id":${id},"j":{"e":1${'0'.repeat(400)}}}}}`);
    });

    // Docs and code disagree: DESIGN §3 keeps array bounds other than 1 "in a documented form"
    // (docs/values.md: {"lower_bounds":[0],"values":[1,2]}, what `_events` deliver), a query
    // returns [1,2] and drops them.
    it('an array whose lower bound is not 1 keeps its bounds (DESIGN §3)', async () => {
      const [{ id }] = await rig.sql<{ id: number }>(`INSERT INTO vals (ia) VALUES ('[0:1]={1,2}') RETURNING id`);
      const r = await readBack(id);
      expect(r.text).toBe(await owed(id));
    });
  });

  describe('hostile values outside where', () => {
    const EVIL = [`'; DROP TABLE docs; --`, 'x\u0000y', '"\\u0000"', `1) OR (1=1`, `asc; DROP TABLE docs`, `docs_title_key" DO NOTHING; --`, `$1`, `{"}`];
    const unexpected: string[] = [];

    /** A clean answer: no 5xx, errors are GraphQL errors without a stack. */
    const clean = (r: { status: number; text: string; body: any }, what: string) => {
      expect(r.status, what).toBeLessThan(500);
      for (const e of r.body.errors ?? []) {
        expect(typeof e.message, what).toBe('string');
        expect(e.extensions?.stack ?? e.extensions?.exception ?? e.extensions?.originalError, what).toBeUndefined();
        if (e.message === 'Unexpected error.') unexpected.push(what);
      }
      expect(r.text, what).not.toMatch(/\bat \S+ \(|node:internal|\.ts:\d+/);
      return r.body;
    };
    const state = () => rig.sql(`SELECT
      (SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public') AS tables,
      (SELECT md5(string_agg(d::text, '|' ORDER BY d.id)) FROM docs d) AS docs,
      (SELECT md5(string_agg(k::text, '|' ORDER BY k.id)) FROM kids k) AS kids,
      (SELECT md5(string_agg(u::text, '|' ORDER BY u.id)) FROM users u) AS users,
      (SELECT md5(string_agg(v::text, '|' ORDER BY v.id)) FROM vals v) AS vals`);

    it('offset, order_by (nested too), distinct_on and _inc refuse hostile values with a clean error and run nothing', async () => {
      const before = await state();
      for (const e of EVIL) {
        for (const [q, v] of [
          ['query($v: Int) { docs(offset: $v) { id } }', e],
          ['query($v: Int) { docs { kids(offset: $v) { id } } }', e],
          ['query($v: [docs_order_by!]) { docs(order_by: $v) { id } }', [{ owner: { name: e } }]],
          ['query($v: [docs_order_by!]) { docs(order_by: $v) { id } }', [{ owner: { [e]: 'asc' } }]],
          ['query($v: [docs_order_by!]) { docs(order_by: $v) { id } }', [{ [e]: 'asc' }]],
          ['query($v: [docs_order_by!]) { docs(order_by: $v) { id } }', [{ kids_aggregate: { count: e } }]],
          ['query($v: [kids_order_by!]) { docs { kids(order_by: $v) { id } } }', [{ doc: { owner: { name: e } } }]],
          ['query($v: [docs_select_column!]) { docs(distinct_on: $v) { id } }', [e]],
          ['query($v: [kids_select_column!]) { docs { kids(distinct_on: $v) { id } } }', [e]],
          ['query($v: [docs_select_column!]) { docs_aggregate { aggregate { count(columns: $v) } } }', [e]],
          ['mutation($v: Int) { update_docs(where: {id: {_eq: 1}}, _inc: {score: $v}) { affected_rows } }', e],
          ['mutation($v: numeric) { update_vals(where: {}, _inc: {n: $v}) { affected_rows } }', e],
          ['mutation($v: bigint) { update_vals(where: {}, _inc: {big: $v}) { affected_rows } }', e],
        ] as Array<[string, unknown]>) {
          const what = `${q} with ${JSON.stringify(v)}`;
          const b = clean(await post(q, { v }), what);
          expect(b.errors?.length, what).toBeGreaterThan(0);
          expect(b.data ?? null, what).toBeNull();
        }
      }
      // the same in the document: validation errors
      for (const q of [
        'query { docs(offset: "0; DROP TABLE docs") { id } }',
        'query { docs(order_by: {owner: {name: "asc; DROP TABLE docs"}}) { id } }',
        'query { docs(order_by: {owner: {name: asc, secret_x: asc}}) { id } }',
        'query { docs(distinct_on: [title, "id; DROP TABLE docs"]) { id } }',
        'mutation { update_docs(where: {}, _inc: {score: "1; DROP TABLE docs"}) { affected_rows } }',
      ]) expect(clean(await post(q), q).errors.length, q).toBeGreaterThan(0);
      // numbers outside the range are refused too, not passed on
      for (const off of [-1, 2 ** 31, 1e300]) {
        const b = clean(await post('query($v: Int) { docs(offset: $v) { id } }', { v: off }), `offset ${off}`);
        expect(b.errors?.[0].message, `offset ${off}`).toMatch(/non-negative|Int cannot represent/);
      }
      const far = clean(await post('query { docs(offset: 2147483647, order_by: {owner: {name: desc}}) { id } kids(offset: 3, limit: 1, order_by: {doc: {owner: {name: asc}}, id: asc}) { name } }'), 'far offset');
      expect(far.data).toEqual({ docs: [], kids: [{ name: 'k4' }] });
      expect(await state()).toEqual(before);
    });

    it('on_conflict: a hostile constraint or update column is refused; hostile values in its where are data', async () => {
      const before = await state();
      const [{ body: a1Body }] = await rig.sql<{ body: string }>("SELECT body FROM docs WHERE title = 'a1'");
      let upserts = 0;
      const ins = 'mutation($c: docs_constraint!, $u: [docs_update_column!]!, $w: docs_bool_exp) { insert_docs(objects: [{owner_id: 1, title: "a1", body: "upserted"}], on_conflict: {constraint: $c, update_columns: $u, where: $w}) { affected_rows returning { id body } } }';
      for (const e of EVIL) {
        const c = clean(await post(ins, { c: e, u: ['body'] }), `constraint ${e}`);
        expect(c.errors[0].message).toMatch(/docs_constraint/);
        const u = clean(await post(ins, { c: 'docs_title_key', u: ['body', e] }), `update_columns ${e}`);
        expect(u.errors[0].message).toMatch(/docs_update_column/);
        for (const w of [{ title: { _eq: e } }, { body: { _like: e } }, { _or: [{ title: { _in: [e] } }, { body: { _nilike: e } }] }, { owner: { name: { _gte: e } } }, { kids: { name: { _neq: e } } }]) {
          const what = `where ${JSON.stringify(w)}`;
          const b = clean(await post(ins, { c: 'docs_title_key', u: ['body'], w }), what);
          if (e.includes('\u0000')) {
            expect(b.errors?.[0].extensions.code, what).toBe('data-exception'); // Postgres refuses NUL in text
            continue;
          }
          expect(b.errors, what).toBeUndefined();
          // title "a1" exists: the conflict's where decides, as the same filter decides in a query
          const q = await post('query($w: docs_bool_exp!) { docs(where: {_and: [{title: {_eq: "a1"}}, $w]}) { id } }', { w });
          expect(b.data.insert_docs.affected_rows, what).toBe(q.body.data.docs.length);
          upserts += b.data.insert_docs.affected_rows;
          await rig.sql(`UPDATE docs SET body = $1 WHERE title = 'a1'`, [a1Body]);
        }
      }
      expect(upserts).toBeGreaterThan(0); // some of those where clauses did match (_nilike, _neq): the value was data
      // an inserted hostile value is stored as it was sent
      const evilTitle = EVIL[0];
      const stored = clean(await post('mutation($t: String!) { insert_docs_one(object: {owner_id: 1, title: $t}, on_conflict: {constraint: docs_title_key, update_columns: [title]}) { id title } }', { t: evilTitle }), 'insert evil');
      expect(stored.data.insert_docs_one.title).toBe(evilTitle);
      await rig.sql('DELETE FROM docs WHERE id = $1', [stored.data.insert_docs_one.id]);
      expect(await state()).toEqual(before);
    });

    it('every comparison operator on every column type takes a hostile value as data or refuses it cleanly, as admin and as a role', async () => {
      const before = await state();
      const OPS = ['_eq', '_neq', '_gt', '_gte', '_lt', '_lte', '_in', '_nin', '_like', '_nlike', '_ilike', '_nilike', '_is_null'];
      const arg = (op: string, e: string, isArray: boolean) => (op === '_in' || op === '_nin' ? [e] : op === '_is_null' ? e : isArray ? [e, null] : e);
      const cases: Array<{ table: string; cols: Record<string, boolean>; headers: Record<string, string> }> = [
        { table: 'vals', headers: admin, cols: { u: false, d: false, t: false, ttz: false, ts: false, tstz: false, iv: false, n: false, big: false, j: false, ia: true, ta: true, da: true, tsa: true, ba: true } },
        { table: 'docs', headers: admin, cols: { title: false, body: false, secret: false, score: false } },
        { table: 'docs', headers: as('editor', 1), cols: { title: false, owner_id: false, score: false } },
        { table: 'kids', headers: as('anon'), cols: { name: false } },
      ];
      let asData = 0;
      let refused = 0;
      for (const { table, cols, headers } of cases) {
        for (const [col, isArray] of Object.entries(cols)) {
          for (const op of OPS) {
            for (const e of EVIL) {
              const w = { [col]: { [op]: arg(op, e, isArray) } };
              const what = `${table} as ${headers['x-walnats-role'] ?? 'admin'}: ${JSON.stringify(w)}`;
              const b = clean(await post(`query($w: ${table}_bool_exp) { ${table}(where: $w) { id } }`, { w }, headers), what);
              if (b.errors) refused++;
              else {
                asData++;
                expect(Array.isArray(b.data[table]), what).toBe(true);
              }
            }
          }
        }
      }
      expect(asData).toBeGreaterThan(100);
      expect(refused).toBeGreaterThan(100);
      // the same through a mutation's where and a delete's where, which must then match nothing
      for (const e of EVIL) {
        const b = clean(await post('mutation($e: String!) { update_docs(where: {_or: [{title: {_eq: $e}}, {body: {_like: $e}}]}, _set: {body: $e}) { affected_rows } delete_kids(where: {name: {_in: [$e]}}) { affected_rows } }', { e }), `mutation where ${JSON.stringify(e)}`);
        if (!b.errors) expect(b.data).toEqual({ update_docs: { affected_rows: 0 }, delete_kids: { affected_rows: 0 } });
        else expect(b.errors[0].extensions.code).toBe('data-exception');
      }
      expect(unexpected).toEqual([]); // every refusal said why (no masked "Unexpected error.")
      expect(await state()).toEqual(before);
    });
  });

  describe('row cap and anonymous role', () => {
    // gateway_max_rows (GatewayOptions.maxRows) is 5 in this file; doc 1 has 8 kids.
    it('gateway_max_rows caps a root list without limit, a larger limit, and a nested array relationship; aggregates still count every row', async () => {
      const r = await post(`{
        kids { id }
        asked: kids(limit: 100) { id }
        few: kids(limit: 2) { id }
        docs_by_pk(id: 1) { kids { id } kids_aggregate { aggregate { count } nodes { id } } }
        docs(where: {id: {_eq: 1}}) { kids(order_by: {id: desc}) { name } }
        kids_aggregate { aggregate { count } nodes { id } }
      }`);
      expect(r.body.errors).toBeUndefined();
      const d = r.body.data;
      expect(d.kids).toHaveLength(5);
      expect(d.asked).toHaveLength(5);
      expect(d.few).toHaveLength(2);
      expect(d.docs_by_pk.kids).toHaveLength(5);
      expect(d.docs_by_pk.kids_aggregate.aggregate.count).toBe(8);
      expect(d.docs_by_pk.kids_aggregate.nodes).toHaveLength(5);
      expect(d.docs[0].kids.map((k: { name: string }) => k.name)).toEqual(['k8', 'k7', 'k6', 'k5', 'k4']);
      expect(d.kids_aggregate.aggregate.count).toBe(8);
      expect(d.kids_aggregate.nodes).toHaveLength(5);
      // a role's max_rows above the global cap does not raise it
      const wide = await post('{ kids(limit: 50) { id } }', undefined, as('wide'));
      expect(wide.body.data.kids).toHaveLength(5);
    });

    it('a request without credentials gets anonymous_role and sees only the rows and columns its permission allows', async () => {
      const visible = await rig.sql<{ id: number; title: string }>('SELECT id, title FROM docs WHERE score > 0 ORDER BY id');
      expect(visible.length).toBeGreaterThan(0);
      expect((await rig.sql('SELECT count(*)::int AS n FROM docs WHERE score <= 0'))[0].n).toBeGreaterThan(0);
      const r = await post('{ docs(order_by: {id: asc}) { id title kids(order_by: {id: asc}) { name } } }', undefined, {});
      expect(r.status).toBe(200);
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.docs.map((x: { id: number; title: string }) => ({ id: x.id, title: x.title }))).toEqual(visible);
      const doc1 = r.body.data.docs.find((x: { id: number }) => x.id === 1);
      if (doc1) expect(doc1.kids).toHaveLength(5); // the global cap holds for the anonymous role too
      const hidden = (await rig.sql<{ id: number }>('SELECT id FROM docs WHERE score <= 0 ORDER BY id LIMIT 1'))[0].id;
      const byPk = await post(`{ docs_by_pk(id: ${hidden}) { id title } }`, undefined, {});
      expect(byPk.body.errors).toBeUndefined();
      expect(byPk.body.data.docs_by_pk).toBeNull();
      // columns and tables outside the permission are not in its schema, not even to filter on
      for (const q of ['{ docs { secret } }', '{ docs { owner_id } }', '{ docs(where: {score: {_lte: 0}}) { id } }', '{ docs(order_by: {score: asc}) { id } }', '{ users { name } }', '{ docs { owner { name } } }', '{ docs_aggregate { aggregate { count } } }']) {
        const x = await post(q, undefined, {});
        expect(x.status, q).toBeLessThan(500);
        expect(x.body.errors?.[0].message, q).toMatch(/Cannot query field|not defined|Unknown argument|docs_order_by|docs_bool_exp/);
        expect(x.text, q).not.toMatch(/S-[ab]\d|-secret|Ann|Ben|body [ab]/); // no value leaks through an error
      }
      // and no mutation at all
      const before = await docsTable();
      const m = await post('mutation { insert_docs_one(object: {owner_id: 1, title: "anon"}) { id } }', undefined, {});
      expect(m.status).toBeLessThan(500);
      expect(m.body.errors[0].message).toMatch(/mutation/i);
      expect(await docsTable()).toEqual(before);
    });

    it('credentials that fail are refused, never downgraded to the anonymous role', async () => {
      const wrong = await post('{ docs { id } }', undefined, { 'x-walnats-admin-secret': 'nope' });
      expect(wrong.status).toBe(401);
      const bearer = await post('{ docs { id } }', undefined, { authorization: 'Bearer not-a-token' });
      expect(bearer.status).toBe(401);
      expect(bearer.body.data ?? null).toBeNull();
    });
  });
});

/** JSON text without the blanks between tokens (Postgres prints `{"a": 1}`; JSON.stringify writes `{"a":1}`). */
function compact(json: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (inString) {
      out += c;
      if (c === '\\') out += json[++i];
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (!' \n\t\r'.includes(c)) out += c;
  }
  return out;
}
