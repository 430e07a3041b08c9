/**
 * Upsert (`insert_x(objects, on_conflict: {constraint, update_columns, where})`) under a role's
 * permissions: the update path (`ON CONFLICT … DO UPDATE`) is held to exactly the rules of
 * update_x — the update permission itself, its columns, its filter on the existing row, its `set`
 * presets over the client's values and its `check` on the new row — while the insert path keeps
 * the insert permission's. Real Postgres and nats-server (test/fixtures/gateway/setup.ts).
 */
import { describe, expect, it } from 'vitest';
import { useRig, actingAs } from '../fixtures/gateway/setup.ts';
import type { PermissionsSpec } from '../../src/gateway/permissions.ts';

const SCHEMA = `
CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE docs (
  id serial PRIMARY KEY,
  owner_id int NOT NULL REFERENCES users(id),
  title text NOT NULL,
  body text,
  score int NOT NULL DEFAULT 0,
  CONSTRAINT docs_title_key UNIQUE (title)
);
CREATE TABLE kids (id serial PRIMARY KEY, doc_id int NOT NULL REFERENCES docs(id), name text NOT NULL);
INSERT INTO users VALUES (1, 'Ann'), (2, 'Ben');
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
          select: { columns: ['id', 'owner_id', 'title', 'body', 'score'], filter: { owner_id: { _eq: 'X-Hasura-User-Id' } } },
          insert: { columns: ['owner_id', 'title', 'body', 'score'], check: { score: { _gte: 0 } } },
          update: {
            columns: ['owner_id', 'title', 'score'],
            filter: { owner_id: { _eq: 'X-Hasura-User-Id' } },
            check: { score: { _lt: 100 } },
            set: { owner_id: 'X-Hasura-User-Id', body: 'edited by the preset' },
          },
        },
        kids: { select: { columns: ['id', 'name', 'doc_id'] }, insert: { columns: ['name', 'doc_id'] } },
      },
    },
    /** May insert docs but not update them. */
    inserter: {
      tables: {
        docs: {
          select: { columns: ['id', 'owner_id', 'title', 'score'] },
          insert: { columns: ['owner_id', 'title', 'body', 'score'] },
        },
      },
    },
  },
};

describe('gateway upsert permissions', () => {
  const { rig } = useRig({ sqlText: SCHEMA, gateway: { adminSecret: ADMIN, permissions } });

  const post = (query: string, variables?: Record<string, unknown>, headers: Record<string, string> = admin) => rig.gql(query, variables, headers);
  const doc = async (title: string) =>
    (await rig.sql<{ id: number; owner_id: number; title: string; body: string | null; score: number }>('SELECT id, owner_id, title, body, score FROM docs WHERE title = $1', [title]))[0];
  const seed = async (owner: number, title: string, score = 1, body: string | null = null) =>
    (await rig.sql<{ id: number }>('INSERT INTO docs (owner_id, title, score, body) VALUES ($1, $2, $3, $4) RETURNING id', [owner, title, score, body]))[0].id;
  const UPDATE_CHECK_FAILED = 'check constraint of an update permission has failed';

  describe('set presets', () => {
    it('an upsert that updates an existing row stores the update presets, not the values the client sent', async () => {
      const id = await seed(1, 'preset-1');
      const r = await post(
        'mutation { insert_docs(objects: [{owner_id: 2, title: "preset-1", body: "client body"}], on_conflict: {constraint: docs_title_key, update_columns: [owner_id]}) { affected_rows returning { id owner_id body } } }',
        undefined,
        as('editor', 1),
      );
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs).toEqual({ affected_rows: 1, returning: [{ id, owner_id: 1, body: 'edited by the preset' }] });
      expect(await doc('preset-1')).toMatchObject({ id, owner_id: 1, body: 'edited by the preset' });
      expect(r.text).not.toContain('walnats$inserted');
    });

    it('the update presets apply even to columns outside update_columns, and update_columns take the client\'s values', async () => {
      const id = await seed(1, 'preset-2', 3, 'old body');
      const r = await post('mutation { insert_docs_one(object: {owner_id: 1, title: "preset-2", score: 42}, on_conflict: {constraint: docs_title_key, update_columns: [score]}) { id score body } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs_one).toEqual({ id, score: 42, body: 'edited by the preset' });
    });

    it('an upsert that inserts a new row is not given the update presets', async () => {
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "preset-new", body: "mine"}], on_conflict: {constraint: docs_title_key, update_columns: [owner_id]}) { affected_rows } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(await doc('preset-new')).toMatchObject({ owner_id: 1, body: 'mine' });
    });
  });

  describe('check', () => {
    it('an upsert whose update breaks the update check fails with update_x\'s permission error and changes nothing', async () => {
      const id = await seed(1, 'check-1');
      const viaUpdate = await post(`mutation { update_docs_by_pk(pk_columns: {id: ${id}}, _set: {score: 500}) { id } }`, undefined, as('editor', 1));
      expect(viaUpdate.body.errors[0].extensions.code).toBe('permission-error');
      expect(viaUpdate.body.errors[0].message).toBe(UPDATE_CHECK_FAILED);
      const r = await post(
        // the first object is a fresh insert: the failure rolls it back too
        'mutation { insert_docs(objects: [{owner_id: 1, title: "check-fresh", score: 500}, {owner_id: 1, title: "check-1", score: 500}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows } }',
        undefined,
        as('editor', 1),
      );
      expect(r.body.errors?.[0].extensions.code).toBe('permission-error');
      expect(r.body.errors[0].message).toBe(viaUpdate.body.errors[0].message);
      expect(r.body.data?.insert_docs ?? null).toBeNull();
      expect(await doc('check-1')).toMatchObject({ score: 1, body: null });
      expect(await doc('check-fresh')).toBeUndefined();
    });

    it('the update check is not applied to rows the upsert inserts, the insert check is', async () => {
      const ok = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "check-insert", score: 500}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows } }', undefined, as('editor', 1));
      expect(ok.body.errors).toBeUndefined();
      expect(await doc('check-insert')).toMatchObject({ score: 500 });
      const bad = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "check-insert-neg", score: -1}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows } }', undefined, as('editor', 1));
      expect(bad.body.errors?.[0].extensions.code).toBe('permission-error');
      expect(bad.body.errors[0].message).toBe('check constraint of an insert permission has failed');
      expect(await doc('check-insert-neg')).toBeUndefined();
    });

    it('an update that passes the update check goes through (the insert check is not applied to updated rows)', async () => {
      const id = await seed(1, 'check-2');
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "check-2", score: 99}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows returning { id score } } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs).toEqual({ affected_rows: 1, returning: [{ id, score: 99 }] });
    });

    it('a nested upsert (through a relationship) is held to the update check and presets too', async () => {
      const id = await seed(1, 'nested-1');
      const bad = await post(
        'mutation { insert_kids_one(object: {name: "k", doc: {data: {owner_id: 1, title: "nested-1", score: 500}, on_conflict: {constraint: docs_title_key, update_columns: [score]}}}) { id } }',
        undefined,
        as('editor', 1),
      );
      expect(bad.body.errors?.[0].extensions.code).toBe('permission-error');
      expect(bad.body.errors[0].message).toContain(UPDATE_CHECK_FAILED);
      expect(await doc('nested-1')).toMatchObject({ score: 1, body: null });
      expect(await rig.sql('SELECT * FROM kids WHERE doc_id = $1', [id])).toEqual([]);
      const ok = await post(
        'mutation { insert_kids_one(object: {name: "k", doc: {data: {owner_id: 2, title: "nested-1", score: 7}, on_conflict: {constraint: docs_title_key, update_columns: [owner_id, score]}}}) { doc_id } }',
        undefined,
        as('editor', 1),
      );
      expect(ok.body.errors).toBeUndefined();
      expect(ok.body.data.insert_kids_one).toEqual({ doc_id: id });
      expect(await doc('nested-1')).toMatchObject({ owner_id: 1, score: 7, body: 'edited by the preset' });
    });
  });

  describe('update filter', () => {
    it('a conflicting row outside the update filter is not updated, while the insert path is unaffected', async () => {
      const theirs = await seed(2, 'filter-theirs', 5, 'their body');
      const r = await post(
        'mutation { insert_docs(objects: [{owner_id: 1, title: "filter-theirs", score: 9}, {owner_id: 1, title: "filter-new", score: 9}], on_conflict: {constraint: docs_title_key, update_columns: [owner_id, score]}) { affected_rows returning { title owner_id score } } }',
        undefined,
        as('editor', 1),
      );
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs).toEqual({ affected_rows: 1, returning: [{ title: 'filter-new', owner_id: 1, score: 9 }] });
      expect(await doc('filter-theirs')).toEqual({ id: theirs, owner_id: 2, title: 'filter-theirs', body: 'their body', score: 5 });
      expect(await doc('filter-new')).toMatchObject({ owner_id: 1, score: 9, body: null });
    });

    it('the client\'s on_conflict where narrows the update further', async () => {
      await seed(1, 'filter-where', 5);
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "filter-where", score: 9}], on_conflict: {constraint: docs_title_key, update_columns: [score], where: {score: {_gt: 5}}}) { affected_rows } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs.affected_rows).toBe(0);
      expect(await doc('filter-where')).toMatchObject({ score: 5, body: null });
    });
  });

  describe('columns and update permission', () => {
    it('update_columns offers only the role\'s update columns', async () => {
      await seed(1, 'cols-1', 1, 'kept');
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "cols-1", body: "changed"}], on_conflict: {constraint: docs_title_key, update_columns: [body]}) { affected_rows } }', undefined, as('editor', 1));
      expect(r.body.errors?.[0].message).toMatch(/docs_update_column/);
      expect(await doc('cols-1')).toMatchObject({ body: 'kept' });
    });

    it('a role without update permission cannot upsert-update (no on_conflict), but can insert', async () => {
      await seed(1, 'noupd-1', 1);
      const r = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "noupd-1", score: 50}], on_conflict: {constraint: docs_title_key, update_columns: [score]}) { affected_rows } }', undefined, as('inserter'));
      expect(r.body.errors?.length).toBeGreaterThan(0);
      expect(r.body.data?.insert_docs ?? null).toBeNull();
      expect(await doc('noupd-1')).toMatchObject({ score: 1 });
      const intro = await post('{ __type(name: "mutation_root") { fields { name args { name } } } }', undefined, as('inserter'));
      const ins = intro.body.data.__type.fields.find((f: { name: string }) => f.name === 'insert_docs');
      expect(ins.args.map((a: { name: string }) => a.name)).toEqual(['objects']);
      const plain = await post('mutation { insert_docs(objects: [{owner_id: 1, title: "noupd-2", score: 50}]) { affected_rows } }', undefined, as('inserter'));
      expect(plain.body.errors).toBeUndefined();
      expect(await doc('noupd-2')).toMatchObject({ score: 50 });
    });
  });

  describe('DO NOTHING', () => {
    it('empty update_columns skips a conflicting row without presets or check, and inserts the others', async () => {
      await seed(1, 'nothing-1', 1);
      const r = await post(
        'mutation { insert_docs(objects: [{owner_id: 1, title: "nothing-1", score: 500}, {owner_id: 1, title: "nothing-2", score: 3}], on_conflict: {constraint: docs_title_key, update_columns: []}) { affected_rows returning { title score } } }',
        undefined,
        as('editor', 1),
      );
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs).toEqual({ affected_rows: 1, returning: [{ title: 'nothing-2', score: 3 }] });
      expect(await doc('nothing-1')).toMatchObject({ owner_id: 1, score: 1, body: null });
    });

    it('DO NOTHING on another user\'s row leaves it as it is', async () => {
      await seed(2, 'nothing-theirs', 4, 'theirs');
      const r = await post('mutation { insert_docs_one(object: {owner_id: 1, title: "nothing-theirs"}, on_conflict: {constraint: docs_title_key, update_columns: []}) { id } }', undefined, as('editor', 1));
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data.insert_docs_one).toBeNull();
      expect(await doc('nothing-theirs')).toMatchObject({ owner_id: 2, score: 4, body: 'theirs' });
    });
  });
});
