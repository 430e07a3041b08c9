/**
 * Captures real pgoutput bytes for the decoder's unit tests.
 *
 *   npx tsx scripts/capture-pgoutput.ts [scenario…]
 *
 * Starts a throwaway Postgres (test harness), and for each scenario: runs its setup, creates
 * a fresh logical slot, runs the scenario's SQL, reads every message the slot produces with
 * pg_logical_slot_get_binary_changes (same bytes as the walsender's XLogData payloads; the
 * `lsn` column is the XLogData walStart), and writes them as hex to
 * test/fixtures/pgoutput/<scenario>.json. The fixtures are committed; rerun this only to
 * add scenarios or when moving to a newer Postgres.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type PgServer } from '../test/harness/postgres.ts';
import type { StoredFixture as Fixture } from '../test/fixtures/pgoutput/load.ts';

interface Scenario {
  name: string;
  description: string;
  protoVersion: number;
  streaming?: boolean;
  twoPhase?: boolean;
  /** Run before the slot exists: not captured. */
  setup: string[];
  /** Run on one connection after the slot is created, in order. */
  sql: string[];
}

// Deterministic, incompressible-looking text: 200 md5 digests = 6400 characters, well above
// the 2 kB TOAST threshold; STORAGE EXTERNAL keeps it out of line and uncompressed.
const BIG_TEXT = `(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) AS i)`;

// Abort records and non-transactional messages are not flushed at once, and the SQL decoding
// functions read only flushed WAL: a checkpoint flushes everything and decodes to nothing.
const FLUSH = `CHECKPOINT`;

const scenarios: Scenario[] = [
  {
    name: 'identity-default',
    description: 'insert, update of a non-key column, delete, NULLs and UTF-8 under REPLICA IDENTITY DEFAULT (primary key)',
    protoVersion: 1,
    setup: [
      `CREATE TABLE items (id int PRIMARY KEY, name text, qty int, price numeric(10,2), tags text[])`,
    ],
    sql: [
      `INSERT INTO items VALUES (1, 'apple', 3, 1.50, '{a,b}'), (2, 'Bär ☃', NULL, NULL, NULL)`,
      `UPDATE items SET qty = 4 WHERE id = 1`,
      `DELETE FROM items WHERE id = 2`,
    ],
  },
  {
    name: 'identity-full',
    description: 'update and delete under REPLICA IDENTITY FULL send the whole old row (O)',
    protoVersion: 1,
    setup: [
      `CREATE TABLE full_t (id int PRIMARY KEY, name text, n int)`,
      `ALTER TABLE full_t REPLICA IDENTITY FULL`,
      `INSERT INTO full_t VALUES (1, 'one', 10)`,
    ],
    sql: [
      `UPDATE full_t SET n = 11 WHERE id = 1`,
      `DELETE FROM full_t WHERE id = 1`,
    ],
  },
  {
    name: 'identity-index',
    description: 'REPLICA IDENTITY USING INDEX on a unique non-PK column: update of that column and delete send the key (K)',
    protoVersion: 1,
    setup: [
      `CREATE TABLE idx_t (id int PRIMARY KEY, code text NOT NULL, n int)`,
      `CREATE UNIQUE INDEX idx_t_code ON idx_t (code)`,
      `ALTER TABLE idx_t REPLICA IDENTITY USING INDEX idx_t_code`,
      `INSERT INTO idx_t VALUES (1, 'a', 1)`,
    ],
    sql: [
      `UPDATE idx_t SET n = 2 WHERE id = 1`,
      `UPDATE idx_t SET code = 'b' WHERE id = 1`,
      `DELETE FROM idx_t WHERE id = 1`,
    ],
  },
  {
    name: 'update-key-change',
    description: 'update that changes the primary key sends the old key (K) then the new row',
    protoVersion: 1,
    setup: [
      `CREATE TABLE keyed (a int, b int, v text, PRIMARY KEY (a, b))`,
      `INSERT INTO keyed VALUES (1, 1, 'x')`,
    ],
    sql: [`UPDATE keyed SET b = 2 WHERE a = 1`],
  },
  {
    name: 'toast-unchanged',
    description: 'a TOASTed column not touched by an update is sent as unchanged (u)',
    protoVersion: 1,
    setup: [
      `CREATE TABLE docs (id int PRIMARY KEY, title text, body text)`,
      `ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`,
    ],
    sql: [
      `INSERT INTO docs VALUES (1, 'first', ${BIG_TEXT})`,
      `UPDATE docs SET title = 'second' WHERE id = 1`,
    ],
  },
  {
    name: 'truncate',
    description: 'plain TRUNCATE of one table, then TRUNCATE of two tables RESTART IDENTITY CASCADE (cascading to a third)',
    protoVersion: 1,
    setup: [
      `CREATE TABLE plain_t (id serial PRIMARY KEY)`,
      `CREATE TABLE parent_a (id serial PRIMARY KEY)`,
      `CREATE TABLE parent_b (id serial PRIMARY KEY)`,
      `CREATE TABLE child_c (id serial PRIMARY KEY, b_id int REFERENCES parent_b)`,
    ],
    sql: [
      `TRUNCATE plain_t`,
      `TRUNCATE parent_a, parent_b RESTART IDENTITY CASCADE`,
    ],
  },
  {
    name: 'messages',
    description: 'pg_logical_emit_message: transactional (inside a transaction with a row) and non-transactional, binary content',
    protoVersion: 1,
    setup: [`CREATE TABLE msg_t (id int PRIMARY KEY)`],
    sql: [
      `SELECT pg_logical_emit_message(false, 'walnats.test', '\\x00ff0102feed'::bytea)`,
      `BEGIN`,
      `INSERT INTO msg_t VALUES (1)`,
      `SELECT pg_logical_emit_message(true, 'walnats.tx', '\\xdeadbeef00'::bytea)`,
      `COMMIT`,
      // The non-transactional message survives the rollback; the transactional one does not.
      `BEGIN`,
      `SELECT pg_logical_emit_message(true, 'walnats.lost', 'never seen')`,
      `SELECT pg_logical_emit_message(false, 'walnats.kept', 'kept')`,
      `ROLLBACK`,
      FLUSH,
    ],
  },
  {
    name: 'enum-type',
    description: 'a column of a custom enum type: pgoutput sends a Type (Y) message before the Relation',
    protoVersion: 1,
    setup: [
      `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
      `CREATE TABLE moods (id int PRIMARY KEY, m mood)`,
    ],
    sql: [`INSERT INTO moods VALUES (1, 'happy')`],
  },
  {
    name: 'origin',
    description: 'a transaction replayed under a replication origin: Origin (O) message after Begin',
    protoVersion: 1,
    setup: [
      `CREATE TABLE origin_t (id int PRIMARY KEY)`,
      `SELECT pg_replication_origin_create('upstream')`,
    ],
    sql: [
      `SELECT pg_replication_origin_session_setup('upstream')`,
      `BEGIN`,
      `SELECT pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-01 00:00:00+00')`,
      `INSERT INTO origin_t VALUES (1)`,
      `COMMIT`,
      `SELECT pg_replication_origin_session_reset()`,
    ],
  },
  {
    name: 'stream-abort',
    description:
      'protocol 2 with streaming: a transaction larger than logical_decoding_work_mem (64kB) is streamed in segments; ' +
      'changes inside stream blocks carry the xid; a rolled-back subtransaction gives Stream Abort (subxid), the commit ' +
      'Stream Commit; then a wholly rolled-back streamed transaction (Stream Abort with subxid = xid)',
    protoVersion: 2,
    streaming: true,
    setup: [
      `CREATE TYPE color AS ENUM ('red', 'green')`,
      `CREATE TABLE big (id int PRIMARY KEY, filler text, c color)`,
      `CREATE TABLE small (id int PRIMARY KEY)`,
      `INSERT INTO small VALUES (1)`,
    ],
    sql: [
      `BEGIN`,
      `INSERT INTO big SELECT i, repeat('x', 200), 'red' FROM generate_series(1, 300) AS i`,
      `SELECT pg_logical_emit_message(true, 'walnats.stream', 'in stream')`,
      `SAVEPOINT s1`,
      `INSERT INTO big SELECT i, repeat('y', 200), 'green' FROM generate_series(1001, 1300) AS i`,
      `ROLLBACK TO SAVEPOINT s1`,
      `UPDATE big SET c = 'green' WHERE id = 1`,
      `DELETE FROM big WHERE id = 2`,
      `TRUNCATE small`,
      `COMMIT`,
      `BEGIN`,
      `INSERT INTO big SELECT i, repeat('z', 200), NULL FROM generate_series(2001, 2300) AS i`,
      `ROLLBACK`,
      FLUSH,
    ],
  },
  {
    name: 'two-phase',
    description:
      'protocol 3 with two_phase: PREPARE TRANSACTION gives Begin Prepare … Prepare; then COMMIT PREPARED and ROLLBACK PREPARED',
    protoVersion: 3,
    twoPhase: true,
    setup: [`CREATE TABLE tp (id int PRIMARY KEY, v text)`],
    sql: [
      `BEGIN`,
      `INSERT INTO tp VALUES (1, 'committed')`,
      `PREPARE TRANSACTION 'walnats-gid-1'`,
      `COMMIT PREPARED 'walnats-gid-1'`,
      `BEGIN`,
      `INSERT INTO tp VALUES (2, 'rolled back')`,
      `PREPARE TRANSACTION 'walnats-gid-2'`,
      `ROLLBACK PREPARED 'walnats-gid-2'`,
    ],
  },
  {
    name: 'stream-prepare',
    description: 'protocol 3 with streaming and two_phase: a large prepared transaction is streamed, then Stream Prepare, then Commit Prepared',
    protoVersion: 3,
    streaming: true,
    twoPhase: true,
    setup: [`CREATE TABLE sp (id int PRIMARY KEY, filler text)`],
    sql: [
      `BEGIN`,
      `INSERT INTO sp SELECT i, repeat('p', 200) FROM generate_series(1, 300) AS i`,
      `PREPARE TRANSACTION 'walnats-big'`,
      `COMMIT PREPARED 'walnats-big'`,
    ],
  },
];

async function onConnection<T>(server: PgServer, db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: server.url(db) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function capture(server: PgServer, version: string, s: Scenario): Promise<Fixture> {
  const db = await server.createDatabase('capture');
  const slot = 'capture';
  return onConnection(server, db, async (c) => {
    // The harness runs with synchronous_commit=off, and the SQL decoding functions only read
    // WAL that is flushed: without this, the last commits would not be captured.
    await c.query(`SET synchronous_commit = on`);
    await c.query(`CREATE PUBLICATION pub FOR ALL TABLES`);
    for (const stmt of s.setup) await c.query(stmt);
    await c.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, $2)`, [slot, s.twoPhase ?? false]);
    for (const stmt of s.sql) await c.query(stmt);
    const opts = ['proto_version', String(s.protoVersion), 'publication_names', 'pub', 'messages', 'true'];
    if (s.streaming) opts.push('streaming', 'on');
    if (s.twoPhase) opts.push('two_phase', 'on');
    const placeholders = opts.map((_, i) => `$${i + 2}`).join(', ');
    const res = await c.query<{ lsn: string; xid: string; data: Buffer }>(
      `SELECT lsn::text AS lsn, xid::text AS xid, data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, ${placeholders})`,
      [slot, ...opts],
    );
    await c.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
    return {
      scenario: s.name,
      description: s.description,
      postgres: version,
      protoVersion: s.protoVersion,
      streaming: s.streaming ?? false,
      twoPhase: s.twoPhase ?? false,
      setup: s.setup,
      sql: s.sql,
      messages: res.rows.map((r) => ({ lsn: r.lsn, xid: Number(r.xid), hex: r.data.toString('hex') })),
    };
  });
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(', ')}`);
  const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/pgoutput');
  fs.mkdirSync(outDir, { recursive: true });
  const server = await startPostgres({
    settings: { max_prepared_transactions: 10, logical_decoding_work_mem: '64kB' },
  });
  try {
    const [{ server_version: version }] = await server.sql<{ server_version: string }>('SHOW server_version');
    for (const s of scenarios) {
      if (only.length && !only.includes(s.name)) continue;
      const fixture = await capture(server, version, s);
      const file = path.join(outDir, `${s.name}.json`);
      fs.writeFileSync(file, JSON.stringify(fixture, null, 1) + '\n');
      const tags = fixture.messages.map((m) => String.fromCharCode(parseInt(m.hex.slice(0, 2), 16))).join('');
      process.stdout.write(`${s.name}: ${fixture.messages.length} messages ${tags.length > 80 ? tags.slice(0, 80) + '…' : tags}\n`);
    }
  } finally {
    await server.destroy();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
