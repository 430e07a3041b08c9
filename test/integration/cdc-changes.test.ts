/**
 * The CDC daemon against a real Postgres and a real nats-server: every committed change
 * arrives on its table's subject, once, in commit order, with values per DESIGN.md.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { readFiltered, waitForSubject, type StoredEvent } from '../harness/stream.ts';
import { escapeToken, parseSubject } from '../../src/events/subject.ts';
import { parseLsn } from '../../src/lsn.ts';
import { waitFor } from '../harness/ports.ts';

let pgs: PgServer;
let nats: NatsServer;
let db: string;
let cdc: TestDaemon;
const sql = (text: string, params?: unknown[]) => pgs.sql(text, params, db);
const subj = (table: string, schema = 'public') => `walnats.${escapeToken(db)}.${escapeToken(schema)}.${escapeToken(table)}.>`;
const events = (table: string, count: number, schema = 'public') => waitForSubject(cdc.nc, cdc.stream, subj(table, schema), count);

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  db = await pgs.createDatabase('cdc');
  await sql('CREATE TABLE warmup (id int PRIMARY KEY)');
  cdc = await startTestDaemon(pgs.url(db), nats.url, db, { slot: 'cdc_changes' });
  await waitFor('daemon streaming', async () => cdc.daemon.ready() || undefined);
});

afterAll(async () => {
  await cdc?.stop();
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

describe('row changes', () => {
  it('insert, update and delete under REPLICA IDENTITY DEFAULT give before per the key', async () => {
    await sql('CREATE TABLE rid_default (id int PRIMARY KEY, qty int, note text)');
    await sql(`INSERT INTO rid_default VALUES (1, 5, 'a')`);
    await sql(`UPDATE rid_default SET qty = 6 WHERE id = 1`);
    await sql(`UPDATE rid_default SET id = 2 WHERE id = 1`);
    await sql(`DELETE FROM rid_default WHERE id = 2`);
    const ev = await events('rid_default', 4);
    expect(ev.map((e) => e.body.op)).toEqual(['c', 'u', 'u', 'd']);
    expect(ev.map((e) => e.subject.split('.').pop())).toEqual(['insert', 'update', 'update', 'delete']);
    expect(ev[0].body.before).toBeNull();
    expect(ev[0].body.after).toEqual({ id: 1, qty: 5, note: 'a' });
    expect(ev[1].body.before).toBeNull(); // key unchanged: Postgres sends no old tuple
    expect(ev[1].body.after).toEqual({ id: 1, qty: 6, note: 'a' });
    expect(ev[2].body.before).toEqual({ id: 1 }); // key changed: old key only
    expect(ev[2].body.after).toEqual({ id: 2, qty: 6, note: 'a' });
    expect(ev[3].body.before).toEqual({ id: 2 });
    expect(ev[3].body.after).toBeNull();
    expect(ev[0].body.source).toMatchObject({ connector: 'walnats', db, schema: 'public', table: 'rid_default', snapshot: false });
  });

  it('REPLICA IDENTITY FULL gives the whole old row', async () => {
    await sql('CREATE TABLE rid_full (id int PRIMARY KEY, qty int)');
    await sql('ALTER TABLE rid_full REPLICA IDENTITY FULL');
    await sql('INSERT INTO rid_full VALUES (1, 5)');
    await sql('UPDATE rid_full SET qty = 6');
    await sql('DELETE FROM rid_full');
    const ev = await events('rid_full', 3);
    expect(ev[1].body.before).toEqual({ id: 1, qty: 5 });
    expect(ev[1].body.after).toEqual({ id: 1, qty: 6 });
    expect(ev[2].body.before).toEqual({ id: 1, qty: 6 });
  });

  it('REPLICA IDENTITY USING INDEX gives the index columns as the key', async () => {
    await sql('CREATE TABLE rid_index (id int PRIMARY KEY, code text NOT NULL, qty int)');
    await sql('CREATE UNIQUE INDEX rid_index_code ON rid_index (code)');
    await sql('ALTER TABLE rid_index REPLICA IDENTITY USING INDEX rid_index_code');
    await sql(`INSERT INTO rid_index VALUES (1, 'x', 1)`);
    await sql(`UPDATE rid_index SET code = 'y'`);
    await sql(`DELETE FROM rid_index`);
    const ev = await events('rid_index', 3);
    expect(ev[1].body.before).toEqual({ code: 'x' });
    expect(ev[2].body.before).toEqual({ code: 'y' });
  });

  it('an unchanged TOASTed value is listed in `unchanged` and absent from `after`, never null', async () => {
    await sql('CREATE TABLE toasty (id int PRIMARY KEY, qty int, notes text)');
    await sql(`ALTER TABLE toasty ALTER COLUMN notes SET STORAGE EXTERNAL`);
    await sql(`INSERT INTO toasty SELECT 1, 1, string_agg(md5(i::text), '') FROM generate_series(1, 400) i`);
    await sql('UPDATE toasty SET qty = 2');
    const ev = await events('toasty', 2);
    expect(ev[0].body.after.notes).toHaveLength(12800);
    expect(ev[1].body.unchanged).toEqual(['notes']);
    expect(ev[1].body.after).toEqual({ id: 1, qty: 2 });
    expect('notes' in ev[1].body.after).toBe(false);
  });

  it('with REPLICA IDENTITY FULL the unchanged TOASTed value is filled from the old row', async () => {
    await sql('CREATE TABLE toasty_full (id int PRIMARY KEY, qty int, notes text)');
    await sql('ALTER TABLE toasty_full REPLICA IDENTITY FULL');
    await sql(`ALTER TABLE toasty_full ALTER COLUMN notes SET STORAGE EXTERNAL`);
    await sql(`INSERT INTO toasty_full SELECT 1, 1, string_agg(md5(i::text), '') FROM generate_series(1, 400) i`);
    await sql('UPDATE toasty_full SET qty = 2');
    const ev = await events('toasty_full', 2);
    expect(ev[1].body.unchanged ?? []).toEqual([]);
    expect(ev[1].body.after.notes).toBe(ev[0].body.after.notes);
  });
});

describe('transactions', () => {
  it('a transaction touching several tables keeps its order, one commit_lsn and consecutive seq', async () => {
    await sql('CREATE TABLE tx_a (id int PRIMARY KEY); CREATE TABLE tx_b (id int PRIMARY KEY)');
    await sql('BEGIN; INSERT INTO tx_a VALUES (1); INSERT INTO tx_b VALUES (1); INSERT INTO tx_a VALUES (2); UPDATE tx_b SET id = 2; COMMIT');
    const all = await waitForSubject(cdc.nc, cdc.stream, `walnats.${escapeToken(db)}.public.*.*`, 0);
    const mine = all.filter((e) => e.body.source?.table === 'tx_a' || e.body.source?.table === 'tx_b');
    expect(mine.map((e) => [e.body.source.table, e.body.op])).toEqual([
      ['tx_a', 'c'],
      ['tx_b', 'c'],
      ['tx_a', 'c'],
      ['tx_b', 'u'],
    ]);
    const commit = mine[0].body.source.commit_lsn;
    expect(mine.every((e) => e.body.source.commit_lsn === commit)).toBe(true);
    expect(mine.map((e) => e.body.source.seq)).toEqual([1, 2, 3, 4]);
    expect(mine.map((e) => e.headers['Nats-Msg-Id'])).toEqual([1, 2, 3, 4].map((s) => `${commit}:${s}`));
    expect(mine.every((e, i) => i === 0 || e.seq > mine[i - 1].seq)).toBe(true);
  });

  it('a rolled-back transaction publishes nothing', async () => {
    await sql('CREATE TABLE rolled (id int PRIMARY KEY)');
    await sql('BEGIN; INSERT INTO rolled VALUES (1); ROLLBACK');
    await sql('BEGIN; INSERT INTO rolled VALUES (2); SAVEPOINT s; INSERT INTO rolled VALUES (3); ROLLBACK TO s; COMMIT');
    const ev = await events('rolled', 1);
    // Wait for a later marker so that anything wrongly published would be there by now.
    await sql('CREATE TABLE rolled_marker (id int PRIMARY KEY); INSERT INTO rolled_marker VALUES (1)');
    await events('rolled_marker', 1);
    const again = await readFiltered(cdc.nc, cdc.stream, subj('rolled'));
    expect(again.map((e) => e.body.after.id)).toEqual([2]);
    expect(ev).toHaveLength(1);
  });

  it('truncate of several tables with CASCADE gives one event per table with the flags', async () => {
    await sql('CREATE TABLE tr_parent (id int PRIMARY KEY); CREATE TABLE tr_child (id int PRIMARY KEY, p int REFERENCES tr_parent)');
    await sql('CREATE TABLE tr_other (id serial PRIMARY KEY)');
    await sql('INSERT INTO tr_parent VALUES (1); INSERT INTO tr_child VALUES (1, 1); INSERT INTO tr_other DEFAULT VALUES');
    await sql('TRUNCATE tr_parent, tr_other RESTART IDENTITY CASCADE');
    const parent = await events('tr_parent', 2);
    const child = await events('tr_child', 2);
    const other = await events('tr_other', 2);
    for (const ev of [parent[1], child[1], other[1]]) {
      expect(ev.body.op).toBe('t');
      expect(ev.subject.endsWith('.truncate')).toBe(true);
      expect(ev.body.truncate).toEqual({ cascade: true, restart_identity: true });
    }
    expect(new Set([parent[1], child[1], other[1]].map((e) => e.body.source.commit_lsn)).size).toBe(1);
  });

  it('pg_logical_emit_message arrives on the reserved message subject with prefix and content', async () => {
    await sql(`SELECT pg_logical_emit_message(true, 'orders.audit', 'hello ü')`);
    await sql(`SELECT pg_logical_emit_message(false, 'orders.audit', '\\x00ff'::bytea)`);
    const ev = await waitForSubject(cdc.nc, cdc.stream, `walnats.${escapeToken(db)}.$message.>`, 2);
    expect(ev[0].subject).toBe(`walnats.${escapeToken(db)}.$message.${escapeToken('orders.audit')}`);
    expect(ev[0].body.op).toBe('m');
    expect(ev[0].body.message).toMatchObject({ prefix: 'orders.audit', transactional: true, content_text: 'hello ü' });
    expect(Buffer.from(ev[1].body.message.content, 'base64')).toEqual(Buffer.from([0, 255]));
    expect(ev[1].body.message.transactional).toBe(false);
  });

  it('message contents arrive byte-exact when many messages and rows share the socket (no view into its reused read buffer)', async () => {
    await sql('CREATE TABLE msg_flood (id int PRIMARY KEY, pad text)');
    const n = 3000;
    await sql(
      `DO $$ BEGIN FOR i IN 1..${n} LOOP
         INSERT INTO msg_flood VALUES (i, repeat('p', 200));
         PERFORM pg_logical_emit_message(true, 'flood', 'm' || i || ':' || repeat(chr(65 + i % 26), i % 97));
       END LOOP; END $$`,
    );
    const ev = await waitForSubject(cdc.nc, cdc.stream, `walnats.${escapeToken(db)}.$message.flood`, n);
    const expected = Array.from({ length: n }, (_, k) => `m${k + 1}:${String.fromCharCode(65 + ((k + 1) % 26)).repeat((k + 1) % 97)}`);
    const got = ev.map((e) => e.body.message.content_text as string);
    const firstWrong = got.findIndex((t, i) => t !== expected[i]);
    expect(firstWrong === -1 ? null : { index: firstWrong, got: got[firstWrong], expected: expected[firstWrong] }).toBeNull();
  });
});

describe('identifiers and schema changes', () => {
  it('a table whose name has a dot, a space, a * and non-ASCII letters gets a valid subject that decodes back', async () => {
    const name = 'Bestell.ung *Ärger% >x';
    await sql(`CREATE SCHEMA "sch.ema"; CREATE TABLE "sch.ema"."${name}" (id int PRIMARY KEY)`);
    await sql(`INSERT INTO "sch.ema"."${name}" VALUES (1)`);
    const ev = await events(name, 1, 'sch.ema');
    const tokens = ev[0].subject.split('.');
    expect(tokens).toHaveLength(5);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_%-]+$/);
    expect(parseSubject('walnats', ev[0].subject)).toMatchObject({ schema: 'sch.ema', table: name });
    expect(ev[0].body.source).toMatchObject({ schema: 'sch.ema', table: name });
  });

  it('a column added, dropped and renamed mid-stream shows in the events and as schema events', async () => {
    await sql('CREATE TABLE evolving (id int PRIMARY KEY, a int)');
    await sql('INSERT INTO evolving VALUES (1, 1)');
    await sql('ALTER TABLE evolving ADD COLUMN b text');
    await sql(`INSERT INTO evolving VALUES (2, 2, 'two')`);
    await sql('ALTER TABLE evolving DROP COLUMN a');
    await sql(`INSERT INTO evolving VALUES (3, 'three')`);
    await sql('ALTER TABLE evolving RENAME COLUMN b TO c');
    await sql(`INSERT INTO evolving VALUES (4, 'four')`);
    await sql('ALTER TABLE evolving RENAME TO evolved');
    await sql(`INSERT INTO evolved VALUES (5, 'five')`);
    const before = await events('evolving', 4);
    const after = await events('evolved', 1);
    expect(before.map((e) => e.body.after)).toEqual([
      { id: 1, a: 1 },
      { id: 2, a: 2, b: 'two' },
      { id: 3, b: 'three' },
      { id: 4, c: 'four' },
    ]);
    expect(after[0].body.after).toEqual({ id: 5, c: 'five' });
    const schemaEvents = await waitForSubject(cdc.nc, cdc.stream, `walnats.${escapeToken(db)}.$schema.public.*`, 0);
    const shapes = schemaEvents
      .filter((e) => e.body.relation.table === 'evolving' || e.body.relation.table === 'evolved')
      .map((e) => `${e.body.relation.table}:${e.body.relation.columns.map((c: { name: string }) => c.name).join(',')}`);
    expect(shapes).toEqual(['evolving:id,a', 'evolving:id,a,b', 'evolving:id,b', 'evolving:id,c', 'evolved:id,c']);
    // A schema event has a real WAL position (the walsender streams Relation messages with 0/0),
    // no later than the row event it precedes (same commit LSN, the seq it borrows).
    const ours = schemaEvents.filter((e) => e.body.relation.table === 'evolving' || e.body.relation.table === 'evolved');
    const rows = [...before, ...after];
    for (const [i, e] of ours.entries()) {
      expect(e.body.source.lsn).not.toBe('0/0');
      expect(e.headers['Walnats-Lsn']).toBe(e.body.source.lsn);
      const row = rows[i];
      expect(e.body.source.commit_lsn).toBe(row.body.source.commit_lsn);
      expect(parseLsn(e.body.source.lsn) <= parseLsn(row.body.source.lsn)).toBe(true);
    }
  });
});

describe('positions', () => {
  it('on an idle database the confirmed position still advances', async () => {
    const slotPos = async () => (await pgs.sql<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'cdc_changes'`))[0].lsn;
    // WAL moves (another database, so nothing for this slot to publish); the slot must follow.
    await pgs.sql('CREATE TABLE IF NOT EXISTS idle_elsewhere (id int); INSERT INTO idle_elsewhere VALUES (1)');
    const [{ lsn: walNow }] = await pgs.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const cmp = (a: string, b: string) => {
      const p = (s: string) => s.split('/').map((x) => BigInt('0x' + x));
      const [ah, al] = p(a), [bh, bl] = p(b);
      return ah === bh ? (al === bl ? 0 : al > bl ? 1 : -1) : ah > bh ? 1 : -1;
    };
    await waitFor('slot to pass the idle WAL position', async () => (cmp(await slotPos(), walNow) >= 0 ? true : undefined), 20_000, 200);
  });
});

export type { StoredEvent };
