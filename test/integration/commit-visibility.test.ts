/**
 * A commit can be decoded from the WAL (and published) before new snapshots see it: Postgres
 * flushes the commit record first and leaves the ProcArray later. A synchronous-replication
 * wait for a standby that never comes holds a transaction in exactly that state, for as long
 * as the test likes, so these specifications are deterministic:
 * - the visibility waits hold until the commit is visible and not longer;
 * - a live query re-run by such an event shows the row once it is visible (not the old result);
 * - a backfill chunk read after such a commit does not publish the row as it was before it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });
import pg from 'pg';
import pino from 'pino';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { readFiltered, waitForSubject } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { startRig, until, type Rig } from '../fixtures/gateway/setup.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';
import { waitForCommittedInvisible, waitUntilVisible } from '../../src/replication/visibility.ts';
import { createSnapshotHooks } from '../../src/snapshot/engine.ts';
import { emitSnapshotRequest } from '../../src/snapshot/request.ts';
import { controlSubject } from '../../src/snapshot/control.ts';
import { escapeToken } from '../../src/events/subject.ts';

let pgs: PgServer;
let nats: NatsServer;

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  // Every commit with synchronous_commit=on now waits for a standby that never connects;
  // everything else (the gateway, the daemon, the helpers here) commits locally.
  await pgs.sql(`ALTER SYSTEM SET synchronous_standby_names = 'walnats_never'`);
  await pgs.sql(`ALTER SYSTEM SET synchronous_commit = 'local'`);
  await pgs.sql(`SELECT pg_reload_conf()`);
});
afterAll(async () => {
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

interface HeldCommit {
  /** 32-bit xid, as pgoutput and `source.txid` carry it. */
  xid: number;
  /** Ends the replication wait: the transaction becomes visible. */
  release(): Promise<void>;
}

/** Runs the statements in one transaction whose COMMIT is written to the WAL but held invisible. */
const holding = new Set<HeldCommit>();
afterEach(async () => {
  // A held commit blocks slot creation for the next test: never leave one behind.
  await Promise.all([...holding].map((h) => h.release().catch(() => {})));
});

async function heldCommit(db: string, statements: string[]): Promise<HeldCommit> {
  const c = new pg.Client({ connectionString: pgs.url(db) });
  c.on('error', () => {});
  await c.connect();
  await c.query(`SET synchronous_commit = on`);
  const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  await c.query('BEGIN');
  for (const s of statements) await c.query(s);
  const xid = Number(BigInt((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0].x) % 2n ** 32n);
  const committing = c.query('COMMIT');
  await waitFor('commit waiting for the standby', async () => {
    const r = (await pgs.sql(`SELECT wait_event FROM pg_stat_activity WHERE pid = $1`, [pid])) as Array<{ wait_event: string | null }>;
    return r[0]?.wait_event === 'SyncRep' || undefined;
  }, 10_000, 10);
  const held: HeldCommit = {
    xid,
    async release() {
      if (!holding.delete(held)) return;
      await pgs.sql(`SELECT pg_cancel_backend($1)`, [pid]);
      await committing; // "canceling wait for synchronous replication": committed locally, now visible
      await c.end();
    },
  };
  holding.add(held);
  return held;
}

describe('visibility waits', () => {
  it('waitUntilVisible and waitForCommittedInvisible hold while a committed transaction is invisible, and return once it is visible', async () => {
    const db = await pgs.createDatabase('vis');
    await pgs.sql(`CREATE TABLE t (id int PRIMARY KEY)`, [], db);
    const held = await heldCommit(db, ['INSERT INTO t VALUES (1)']);
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    try {
      // Flushed to the WAL, yet not visible:
      expect((await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(0);
      expect(await waitUntilVisible(c, [held.xid], { timeoutMs: 300 })).toBe(false);
      expect(await waitForCommittedInvisible(c, { timeoutMs: 300 })).toBe(false);
      const both = Promise.all([waitUntilVisible(c, [held.xid]), waitForCommittedInvisible(new ClientPerCall(pgs.url(db)))]);
      let settled = false;
      void both.then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(settled).toBe(false);
      await held.release();
      expect(await both).toEqual([true, true]);
      expect((await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(1);
      // Nothing to wait for: returns at once.
      expect(await waitUntilVisible(c, [held.xid], { timeoutMs: 0 })).toBe(true);
    } finally {
      await c.end();
    }
  });
});

/** A Queryable with a connection of its own per query (two waits must not share one client's queue). */
class ClientPerCall {
  constructor(private readonly url: string) {}
  async query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    const c = new pg.Client({ connectionString: this.url });
    await c.connect();
    try {
      return await c.query<R>(text, values);
    } finally {
      await c.end();
    }
  }
}

describe('live queries', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig({ pg: pgs, nats, destroy: async () => {} });
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('a live query re-run by an event whose commit is not yet visible waits for it and then shows the row', async () => {
    const client = wsClient(rig.wsUrl);
    const live = collect(client, 'subscription { customers(where: {id: {_gte: 700}}, order_by: {id: asc}) { id name } }');
    await until(() => live.results.length >= 1, 'initial result');
    expect(live.results[0].data.customers).toEqual([]);
    const held = await heldCommit(rig.db, [`INSERT INTO customers (id, name, org_id) VALUES (700, 'held', 1)`]);
    // The CDC decoded the commit and published it; the row is not visible yet.
    await rig.publish({ op: 'c', table: 'customers', after: { id: 700, name: 'held', org_id: 1 }, txid: held.xid });
    await new Promise((r) => setTimeout(r, 500));
    expect(live.results.every((r) => r.data.customers.length === 0)).toBe(true);
    await held.release();
    // No further event comes: the re-run of that one event must show the row.
    await until(() => live.results.some((r) => r.data.customers.some((c: { id: number }) => c.id === 700)), 'the held row in the live result');
    live.stop();
    await client.dispose();
  });
});

describe('backfills', () => {
  let d: TestDaemon | undefined;
  afterAll(async () => {
    await d?.stop();
  });

  it('a backfill chunk read after a commit that is decoded but not yet visible does not publish the row as it was before it', async () => {
    const db = await pgs.createDatabase('visbf');
    await pgs.sql(`CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL)`, [], db);
    await pgs.sql(`INSERT INTO items SELECT g, 'old' FROM generate_series(1, 10) g`, [], db);
    const hooks = createSnapshotHooks({ pgUrl: pgs.url(db), publication: 'walnats', prefix: 'walnats', mode: 'never', logger: pino({ level: 'silent' }) });
    d = await startTestDaemon(pgs.url(db), nats.url, db, { slot: db, ...hooks });
    await waitFor('daemon streaming', async () => d!.daemon.ready() || undefined, 60_000);
    const subject = `walnats.${escapeToken(db)}.public.items.>`;

    const held = await heldCommit(db, [`UPDATE items SET v = 'new' WHERE id = 5`]);
    // The update is decoded and published while still invisible to new snapshots.
    await waitForSubject(d.nc, d.stream, subject, 1, 30_000);
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    const { id } = await emitSnapshotRequest(c, [{ schema: 'public', table: 'items' }]);
    await c.end();
    // While the update is invisible, the backfill must not read its chunk.
    await new Promise((r) => setTimeout(r, 1000));
    const early = await readFiltered(d.nc, d.stream, subject);
    expect(early.filter((e) => e.body.op === 'r')).toEqual([]);
    await held.release();
    await waitFor('backfill finished', async () => {
      const control = await readFiltered(d!.nc, d!.stream, controlSubject('walnats', db));
      return control.some((e) => e.body.snapshot.id === id && e.body.event === 'finished') || undefined;
    }, 60_000, 100);

    const events = await readFiltered(d.nc, d.stream, subject);
    const rows = new Map<number, string>();
    for (const e of events) if (e.body.after) rows.set(e.body.after.id, e.body.after.v);
    expect(rows.get(5)).toBe('new');
    expect(rows.size).toBe(10);
  });
});
