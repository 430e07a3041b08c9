/**
 * Initial snapshots and backfills against a real Postgres and nats-server: replaying the
 * `r` events and then the live events of a table, in stream order, gives exactly the
 * table's final contents — with writers inserting, updating and deleting all along.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// 100,000-row tables with writers running: slow on a loaded 2-core machine, never a timing check.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 120_000 });
import pg from 'pg';
import pino from 'pino';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { readFiltered, waitForSubject, type StoredEvent } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { escapeToken } from '../../src/events/subject.ts';
import { createSnapshotHooks, type SnapshotMode } from '../../src/snapshot/engine.ts';
import { checkBackfillTables, emitSnapshotRequest } from '../../src/snapshot/request.ts';
import { controlSubject } from '../../src/snapshot/control.ts';

let pgs: PgServer;
let nats: NatsServer;
const daemons: TestDaemon[] = [];

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
});
afterAll(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

async function daemonFor(db: string, mode: SnapshotMode, chunkSize?: number): Promise<TestDaemon> {
  const hooks = createSnapshotHooks({
    pgUrl: pgs.url(db),
    publication: 'walnats',
    prefix: 'walnats',
    mode,
    chunkSize,
    logger: pino({ level: process.env.WALNATS_TEST_LOG ?? 'silent' }),
  });
  const d = await startTestDaemon(pgs.url(db), nats.url, db, { slot: db, ...hooks });
  daemons.push(d);
  return d;
}

/** Random inserts, updates and deletes on `big` until stopped; returns the stop function. */
function startWriters(db: string, table: string, firstNewId: number): () => Promise<void> {
  let stop = false;
  const loop = (async () => {
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    let next = firstNewId;
    try {
      while (!stop) {
        const r = Math.random();
        const id = 1 + Math.floor(Math.random() * (next - 1));
        if (r < 0.4) await c.query(`INSERT INTO ${table} VALUES ($1, 0, 'new')`, [next++]);
        else if (r < 0.8) await c.query(`UPDATE ${table} SET v = v + 1, note = 'upd' WHERE id = $1`, [id]);
        else await c.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      }
    } finally {
      await c.end();
    }
  })();
  return async () => {
    stop = true;
    await loop;
  };
}

/** Emits a marker message and waits for it in the stream: everything committed before is in. */
async function caughtUp(d: TestDaemon, db: string): Promise<void> {
  const tag = `m${Math.random().toString(36).slice(2)}`;
  await pgs.sql(`SELECT pg_logical_emit_message(true, $1, 'x')`, [tag], db);
  await waitForSubject(d.nc, d.stream, `walnats.${escapeToken(db)}.$message.${tag}`, 1, 60_000);
}

/** Applies read and change events in stream order; returns key → row. */
function replay(events: StoredEvent[], key: (row: Record<string, unknown>) => string): Map<string, Record<string, unknown>> {
  const rows = new Map<string, Record<string, unknown>>();
  for (const e of events) {
    const b = e.body;
    switch (b.op) {
      case 'r':
      case 'c':
        rows.set(key(b.after), b.after);
        break;
      case 'u':
        if (b.before) rows.delete(key(b.before));
        rows.set(key(b.after), b.after);
        break;
      case 'd':
        rows.delete(key(b.before));
        break;
      case 't':
        rows.clear();
        break;
    }
  }
  return rows;
}

async function tableRows(db: string, sql: string, key: (row: Record<string, unknown>) => string): Promise<Map<string, Record<string, unknown>>> {
  const res = await pgs.sql(sql, [], db);
  return new Map((res as Record<string, unknown>[]).map((r) => [key(r), r]));
}

function expectSameRows(actual: Map<string, Record<string, unknown>>, expected: Map<string, Record<string, unknown>>): void {
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  const differing = [...expected.keys()].filter((k) => actual.has(k) && JSON.stringify(actual.get(k)) !== JSON.stringify(expected.get(k)));
  expect({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), differing: differing.slice(0, 5).map((k) => [actual.get(k), expected.get(k)]) }).toEqual({ missing: [], extra: [], differing: [] });
  expect(actual.size).toBe(expected.size);
}

const byId = (r: Record<string, unknown>) => String(r.id);
const tableFilter = (db: string, table: string) => `walnats.${escapeToken(db)}.public.${escapeToken(table)}.>`;

async function waitForFinished(d: TestDaemon, db: string, id: string): Promise<StoredEvent> {
  const [ev] = (await waitForSubject(d.nc, d.stream, controlSubject('walnats', db), 1, 120_000).then(async () => {
    let found: StoredEvent[] = [];
    await waitFor(`snapshot ${id} finished`, async () => {
      found = (await readFiltered(d.nc, d.stream, controlSubject('walnats', db))).filter((e) => e.body.snapshot.id === id && e.body.event === 'finished');
      return found.length > 0 || undefined;
    }, 120_000, 200);
    return found;
  }));
  return ev;
}

describe('initial snapshot', () => {
  it('100,000 rows read while writers insert, update and delete: reads then live events give the final table', async () => {
    const db = await pgs.createDatabase('snapinit');
    await pgs.sql(`CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, note text)`, [], db);
    await pgs.sql(`INSERT INTO big SELECT g, g % 7, 'row ' || g FROM generate_series(1, 100000) g`, [], db);
    const stopWriters = startWriters(db, 'big', 100_001);
    await new Promise((r) => setTimeout(r, 300));
    const d = await daemonFor(db, 'initial');
    await waitFor('daemon streaming', async () => d.daemon.ready() || undefined, 120_000);
    await new Promise((r) => setTimeout(r, 500));
    await stopWriters();
    await caughtUp(d, db);

    const events = await readFiltered(d.nc, d.stream, tableFilter(db, 'big'));
    const reads = events.filter((e) => e.body.op === 'r');
    expect(reads.length).toBeGreaterThanOrEqual(90_000);
    // Every read comes before every live change, and all carry the slot's consistent point.
    const firstLive = events.findIndex((e) => e.body.op !== 'r');
    expect(firstLive === -1 || events.slice(firstLive).every((e) => e.body.op !== 'r')).toBe(true);
    expect(new Set(reads.map((e) => e.body.source.lsn)).size).toBe(1);
    expect(reads[0].body.source).toMatchObject({ snapshot: true, seq: 0, table: 'big' });
    expect(reads[0].subject.endsWith('.read')).toBe(true);
    expect(events.length - reads.length).toBeGreaterThan(0); // the writers overlapped the snapshot

    expectSameRows(replay(events, byId), await tableRows(db, 'SELECT id, v, note FROM big', byId));
    const control = await readFiltered(d.nc, d.stream, controlSubject('walnats', db));
    expect(control.map((e) => e.body.event)).toEqual(['started', 'table_done', 'finished']);
    expect(control[1].body.table).toMatchObject({ table: 'big', rows: reads.length, done: true });
  });

  it('gives byte-identical values to a streamed change of the same row (bool, bpchar, inet, numeric, timestamptz, json)', async () => {
    const db = await pgs.createDatabase('snapvals');
    const ddl = `CREATE TABLE vals (id int PRIMARY KEY, b bool, c char(5), i inet, n numeric(10,4), ts timestamptz, j json, a int[], by bytea)`;
    const row = `true, 'ab', '192.168.0.1', 1.5, '2024-02-29 13:45:00.5+01', '{"x": 1.50}', '{1,NULL,3}', '\\x00ff'`;
    await pgs.sql(ddl, [], db);
    await pgs.sql(`INSERT INTO vals VALUES (1, ${row})`, [], db);
    const d = await daemonFor(db, 'initial');
    await waitFor('daemon streaming', async () => d.daemon.ready() || undefined, 60_000);
    await pgs.sql(`INSERT INTO vals VALUES (2, ${row})`, [], db);
    const ev = await waitForSubject(d.nc, d.stream, tableFilter(db, 'vals'), 2);
    const strip = (raw: string) => JSON.stringify({ ...JSON.parse(raw).after, id: 0 });
    expect(ev.map((e) => e.body.op)).toEqual(['r', 'c']);
    expect(strip(ev[0].raw)).toBe(strip(ev[1].raw));
    expect(ev[0].raw).toContain('"b":true,"c":"ab   ","i":"192.168.0.1","n":"1.5000"');
  });

  it('a table with a composite primary key and one without a primary key are read whole', async () => {
    const db = await pgs.createDatabase('snapkeys');
    await pgs.sql(`CREATE TABLE comp (a int, b text, v int, PRIMARY KEY (a, b))`, [], db);
    await pgs.sql(`CREATE TABLE nokey (x int, y text)`, [], db);
    await pgs.sql(`INSERT INTO comp SELECT g % 10, 'k' || g, g FROM generate_series(1, 500) g`, [], db);
    await pgs.sql(`INSERT INTO nokey SELECT g, 'y' || g FROM generate_series(1, 300) g`, [], db);
    const d = await daemonFor(db, 'initial');
    await waitFor('daemon streaming', async () => d.daemon.ready() || undefined, 60_000);
    const comp = await readFiltered(d.nc, d.stream, tableFilter(db, 'comp'));
    const nokey = await readFiltered(d.nc, d.stream, tableFilter(db, 'nokey'));
    const ck = (r: Record<string, unknown>) => `${r.a}/${r.b}`;
    expectSameRows(replay(comp, ck), await tableRows(db, 'SELECT a, b, v FROM comp', ck));
    expect(nokey.map((e) => e.body.after).sort((p, q) => p.x - q.x)).toEqual(await pgs.sql("SELECT x, y FROM nokey ORDER BY x", [], db));
  });
});

describe('backfill while streaming', () => {
  it('100,000 rows backfilled in chunks while writers insert, update and delete: reads and live events give the final table', async () => {
    const db = await pgs.createDatabase('snapbf');
    await pgs.sql(`CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, note text)`, [], db);
    await pgs.sql(`INSERT INTO big SELECT g, g % 7, 'row ' || g FROM generate_series(1, 100000) g`, [], db);
    const d = await daemonFor(db, 'never', 2000);
    await waitFor('daemon streaming', async () => d.daemon.ready() || undefined, 60_000);
    const stopWriters = startWriters(db, 'big', 100_001);
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    const refs = [{ schema: 'public', table: 'big' }];
    await checkBackfillTables(c, 'walnats', refs);
    const { id } = await emitSnapshotRequest(c, refs);
    await c.end();
    const finished = await waitForFinished(d, db, id);
    await stopWriters();
    await caughtUp(d, db);

    const events = await readFiltered(d.nc, d.stream, tableFilter(db, 'big'));
    const reads = events.filter((e) => e.body.op === 'r');
    const live = events.filter((e) => e.body.op !== 'r');
    expect(live.length).toBeGreaterThan(0);
    // Reads and live events interleave: the backfill did not hold the stream back.
    const firstRead = events.findIndex((e) => e.body.op === 'r');
    const lastRead = events.length - 1 - [...events].reverse().findIndex((e) => e.body.op === 'r');
    expect(events.slice(firstRead, lastRead).some((e) => e.body.op !== 'r')).toBe(true);
    expect(finished.body.table).toMatchObject({ table: 'big', done: true });
    expect(new Set(reads.map((e) => e.headers['Nats-Msg-Id'])).size).toBe(reads.length);
    expect(reads[0].headers['Walnats-Snapshot']).toBe(escapeToken(id));

    expectSameRows(replay(events, byId), await tableRows(db, 'SELECT id, v, note FROM big', byId));
  });

  it('a composite primary key is chunked in key order, key changes included', async () => {
    const db = await pgs.createDatabase('snapbfcomp');
    await pgs.sql(`CREATE TABLE comp (a int, b text, v int, PRIMARY KEY (a, b))`, [], db);
    await pgs.sql(`INSERT INTO comp SELECT g % 10, 'k' || g, g FROM generate_series(1, 3000) g`, [], db);
    const d = await daemonFor(db, 'never', 97);
    await waitFor('daemon streaming', async () => d.daemon.ready() || undefined, 60_000);
    let stop = false;
    const writer = (async () => {
      const w = new pg.Client({ connectionString: pgs.url(db) });
      await w.connect();
      let n = 10_000;
      while (!stop) {
        await w.query(`UPDATE comp SET v = v + 1 WHERE (a, b) = (SELECT a, b FROM comp ORDER BY random() LIMIT 1)`);
        await w.query(`UPDATE comp SET b = b || 'x' WHERE (a, b) = (SELECT a, b FROM comp ORDER BY random() LIMIT 1)`);
        await w.query(`DELETE FROM comp WHERE (a, b) = (SELECT a, b FROM comp ORDER BY random() LIMIT 1)`);
        await w.query(`INSERT INTO comp VALUES ($1 % 10, 'n' || $1, 0)`, [n++]);
      }
      await w.end();
    })();
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    const { id } = await emitSnapshotRequest(c, [{ schema: 'public', table: 'comp' }]);
    await c.end();
    await waitForFinished(d, db, id);
    stop = true;
    await writer;
    await caughtUp(d, db);
    const ck = (r: Record<string, unknown>) => `${r.a}/${r.b}`;
    const events = await readFiltered(d.nc, d.stream, tableFilter(db, 'comp'));
    expectSameRows(replay(events, ck), await tableRows(db, 'SELECT a, b, v FROM comp', ck));
  });

  it('a table without a primary key is refused with a clear error', async () => {
    const db = await pgs.createDatabase('snapbfnokey');
    await pgs.sql(`CREATE TABLE nokey (x int, y text)`, [], db);
    await pgs.sql(`CREATE PUBLICATION walnats FOR ALL TABLES`, [], db);
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    try {
      await expect(checkBackfillTables(c, 'walnats', [{ schema: 'public', table: 'nokey' }, { schema: 'public', table: 'missing' }])).rejects.toThrow(
        /public\.nokey has no primary key[\s\S]*public\.missing does not exist/,
      );
    } finally {
      await c.end();
    }
  });
});
