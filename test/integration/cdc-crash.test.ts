/**
 * Crashes and outages with `walnats cdc` as a real process: SIGKILL mid-load, NATS down for
 * longer than the duplicate window, a stalled stream under a short wal_sender_timeout, and a
 * 200,000-row transaction with memory staying bounded. After each: every committed change
 * exactly once, in commit order.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { ledgerChanges, expectCleanStream, expectSameChanges } from '../harness/verify.ts';
import { loadLedger, useProcessSuite } from '../harness/process-suite.ts';
import { parseLsn } from '../../src/lsn.ts';

const suite = useProcessSuite('crash-test-reader', { settings: { wal_sender_timeout: '2s' } });
const setup = (name: string) => suite.setup(name);
const load = (db: string, txns: number, rows: number, from = 0, onTxn?: (i: number, lsnAfter: bigint) => void | Promise<void>) =>
  loadLedger(suite.pgs.url(db), txns, rows, from, onTxn);
const waitForAll = (stream: string, count: number, timeoutMs?: number) => suite.waitForAll(stream, count, timeoutMs);

describe('crash safety', () => {
  it('SIGKILL of the daemon in the middle of a 50,000-row load, three times, loses and repeats nothing', async () => {
    const { db, stream, start, startStreaming } = await setup('kill9');
    let daemon = await startStreaming();
    const kills: number[] = [];
    // 500 transactions of 100 inserts + 1 update = 50,500 changes.
    const expected = await load(db, 500, 100, 0, async (t) => {
      if (t === 100 || t === 250 || t === 400) {
        await daemon.kill('SIGKILL');
        kills.push(t);
        daemon = start();
      }
    });
    expect(kills).toEqual([100, 250, 400]);
    const events = await waitForAll(stream, expected.length);
    expectCleanStream(events);
    expectSameChanges(ledgerChanges(events), expected);
  }, 240_000);

  it('NATS down for longer than the duplicate window: nothing lost or repeated, and the slot never confirms past what JetStream held', async () => {
    const { db, stream, start, startStreaming } = await setup('natsdown');
    const daemon = await startStreaming({ WALNATS_STREAM_DUPLICATE_WINDOW: '1s', WALNATS_PUBLISH_ACK_TIMEOUT: '2s' });
    const first = await load(db, 50, 20);
    await waitForAll(stream, first.length);
    await suite.nats.stop();
    // Changes committed during the outage, each with an LSN at or after its commit's end.
    const during: Array<{ t: number; after: bigint }> = [];
    const outage = await load(db, 50, 20, 1000, (t, lsn) => void during.push({ t, after: lsn }));
    // Longer than the duplicate window; meanwhile sample what the slot confirms.
    let confirmedMax = 0n;
    for (let i = 0; i < 12; i++) {
      const [row] = await suite.pgs.sql<{ lsn: string }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [db]);
      const v = parseLsn(row.lsn);
      if (v > confirmedMax) confirmedMax = v;
      await new Promise((r) => setTimeout(r, 250));
    }
    // Freeze the picture: no daemon, NATS back; the stream holds exactly what JetStream acked.
    await daemon.kill('SIGKILL');
    await suite.nats.start();
    const held = ledgerChanges(await waitForAll(stream, 0));
    const heldIds = new Set(held.map((c) => `${c.op}:${c.id}`));
    // Nothing committed during the outage could be acknowledged, so the slot stays before it.
    expect(confirmedMax).toBeGreaterThan(0n);
    expect(confirmedMax < during[0].after).toBe(true);
    expect(held.some((c) => c.id > 1000)).toBe(false);
    for (const { t, after } of during) {
      // A transaction wholly before the confirmed position must be in the stream.
      if (after <= confirmedMax) expect(heldIds.has(`u:${1000 + t * 20 + 1}`), `txn ${t} confirmed but not stored`).toBe(true);
    }
    start();
    const expected = [...first, ...outage];
    const events = await waitForAll(stream, expected.length);
    expectCleanStream(events);
    expectSameChanges(ledgerChanges(events), expected);
  }, 180_000);

  it('with wal_sender_timeout 2 s, a stream stalled for 6 s keeps the replication connection alive', async () => {
    const { db, stream, startStreaming } = await setup('stalled');
    const daemon = await startStreaming({ WALNATS_PUBLISH_ACK_TIMEOUT: '60s', WALNATS_PUBLISH_WINDOW: '256' });
    const warm = await load(db, 5, 10);
    await waitForAll(stream, warm.length);
    const walsender = async () =>
      (await suite.pgs.sql<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [db]))[0].pid;
    const pidBefore = await walsender();
    expect(pidBefore).not.toBeNull();
    suite.nats.pause();
    try {
      const more = await load(db, 40, 100, 1000);
      await new Promise((r) => setTimeout(r, 6000));
      expect(await walsender()).toBe(pidBefore);
      suite.nats.resume();
      const events = await waitForAll(stream, warm.length + more.length);
      expectCleanStream(events);
      expectSameChanges(ledgerChanges(events), [...warm, ...more]);
      expect(await walsender()).toBe(pidBefore);
      expect(daemon.log()).not.toMatch(/replication session failed/);
    } finally {
      suite.nats.resume();
    }
  }, 120_000);
});

describe('reconnecting', () => {
  it('the replication connection terminated by the server and a Postgres restart mid-load: the daemon reconnects and loses nothing', async () => {
    const { db, stream, startStreaming } = await setup('reconnect');
    const daemon = await startStreaming();
    const part1 = await load(db, 20, 20, 0);
    await suite.pgs.sql(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`, [db]);
    const part2 = await load(db, 20, 20, 400);
    await suite.pgs.stop();
    await suite.pgs.start();
    const part3 = await load(db, 20, 20, 800);
    const expected = [...part1, ...part2, ...part3];
    const events = await waitForAll(stream, expected.length);
    expectCleanStream(events);
    expectSameChanges(ledgerChanges(events), expected);
    expect(daemon.log()).toMatch(/replication session failed/);
  }, 120_000);
});

describe('operating the process', () => {
  it('serves metrics and readiness, and on SIGTERM drains, confirms the last event and exits 0', async () => {
    const { db, stream, sql, startStreaming } = await setup('sigterm');
    // Rows from before the slot: the initial snapshot publishes them as reads.
    await sql('CREATE TABLE early (id int PRIMARY KEY); INSERT INTO early SELECT generate_series(1, 7)');
    const daemon = await startStreaming();
    const port = Number(/listening on :(\d+)/.exec(daemon.log())![1]);
    const expected = await load(db, 10, 10);
    const events = await waitForAll(stream, expected.length + 7);
    expectSameChanges(ledgerChanges(events), expected);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/walnats_events_total\{table="public\.ledger",op="insert"\} 100\b/);
    expect(metrics).toMatch(/walnats_events_total\{table="public\.ledger",op="update"\} 10\b/);
    expect(metrics).toMatch(/walnats_events_total\{table="public\.early",op="read"\} 7\b/); // reads count as events too
    expect(metrics).toMatch(/walnats_transactions_total \d+/);
    expect(metrics).toMatch(/walnats_publish_latency_seconds_count [1-9]\d*/);
    expect(metrics).toMatch(/walnats_slot_lag_seconds \d/);
    expect(metrics).toMatch(/walnats_commit_to_publish_lag_seconds_count [1-9]\d*/);
    const code = await daemon.kill('SIGTERM');
    expect(code).toBe(0);
    expect(daemon.log()).toMatch(/confirmed position sent/);
    const lastCommit = parseLsn(ledgerChanges(events).length ? events.at(-1)!.body.source.commit_lsn : '0/0');
    const [row] = await suite.pgs.sql<{ lsn: string; active: boolean }>('SELECT confirmed_flush_lsn::text AS lsn, active FROM pg_replication_slots WHERE slot_name = $1', [db]);
    expect(parseLsn(row.lsn) > lastCommit).toBe(true);
    expect(row.active).toBe(false);
  }, 60_000);
});

describe('bounded memory', () => {
  it('a 200,000-row transaction streams through with the daemon staying under 250 MB', async () => {
    const { db, stream, startStreaming } = await setup('bigtxn');
    const daemon = await startStreaming();
    await suite.pgs.sql(`INSERT INTO ledger SELECT g, 0, repeat('x', 60) FROM generate_series(1, 200000) g`, [], db);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, daemon.peakRss())), 100);
    try {
      const events = await waitForAll(stream, 200_000, 180_000);
      peak = Math.max(peak, daemon.peakRss());
      const changes = ledgerChanges(events);
      expect(changes).toHaveLength(200_000);
      expect(changes[0].id).toBe(1);
      expect(changes[199_999].id).toBe(200_000);
      expectCleanStream(events);
    } finally {
      clearInterval(sampler);
    }
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(250 * 1024 * 1024);
  }, 240_000);
});
