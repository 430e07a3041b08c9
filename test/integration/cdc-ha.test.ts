/**
 * High availability and poison changes, with `walnats cdc` as real processes: one active
 * instance per slot and standbys that take over; changes that cannot be published stop the
 * daemon with where and why, or are parked on a dead-letter subject; a dropped slot is an
 * error, not a silent new start; heartbeats through the WAL.
 */
import { describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { DaemonProcess } from '../harness/daemon-process.ts';
import { readStream, readFiltered } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { ledgerChanges, expectCleanStream, expectSameChanges, type ExpectedChange } from '../harness/verify.ts';
import { useProcessSuite } from '../harness/process-suite.ts';
import { escapeToken } from '../../src/events/subject.ts';
import os from 'node:os';
import { collectStatus } from '../../src/status.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/walnats.js');

const suite = useProcessSuite('ha-test-reader');
const setup = (name: string, extra: Record<string, string> = {}) => suite.setup(name, extra);
const waitForAll = (stream: string, count: number) => suite.waitForAll(stream, count, 60_000);

async function insertBatch(sql: (t: string, p?: unknown[]) => Promise<unknown>, from: number, n: number): Promise<ExpectedChange[]> {
  await sql(`INSERT INTO ledger SELECT g, 0, 'x' FROM generate_series($1::bigint, $2::bigint) g`, [from + 1, from + n]);
  return Array.from({ length: n }, (_, i) => ({ op: 'c' as const, id: from + 1 + i, v: 0 }));
}

const port = (d: DaemonProcess) => Number(/listening on :(\d+)/.exec(d.log())![1]);

describe('high availability', () => {
  it('one instance streams, a second waits as a standby and takes over within 10 s of the active one being killed, with no duplicate and no gap', async () => {
    const { db, stream, startStreaming, start, sql } = await setup('ha');
    const active = await startStreaming();
    const standby = start();
    await waitFor('standby to report itself', async () => /standby: another instance is active/.test(standby.log()) || undefined, 30_000);
    expect((await fetch(`http://127.0.0.1:${port(active)}/readyz`)).status).toBe(200);
    const standbyReady = await fetch(`http://127.0.0.1:${port(standby)}/readyz`);
    expect(standbyReady.status).toBe(503);
    expect(await standbyReady.text()).toMatch(/standby/);
    expect(await (await fetch(`http://127.0.0.1:${port(standby)}/metrics`)).text()).toMatch(/walnats_active 0/);
    const status = await collectStatus({ pgUrl: suite.pgs.url(db), natsUrl: [suite.nats.url], slot: db, publication: 'walnats', prefix: 'walnats' } as never);
    expect(status.slot.leader?.name).toBe(`walnats-cdc@${os.hostname()}:${active.pid}`);
    expect(status.slot.standbys).toBe(1);
    expect(typeof status.slot.lagSeconds).toBe('number'); // a walsender runs: Postgres's flush_lag

    const expected: ExpectedChange[] = [];
    for (let i = 0; i < 10; i++) expected.push(...(await insertBatch(sql, i * 100, 100)));
    await active.kill('SIGKILL');
    const killedAt = Date.now();
    for (let i = 10; i < 20; i++) expected.push(...(await insertBatch(sql, i * 100, 100)));
    await waitFor('standby to take over', async () => /streaming changes/.test(standby.log()) || undefined, 10_000, 100);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(standby.log()).toMatch(/took over/);
    const events = await waitForAll(stream, expected.length);
    expectCleanStream(events);
    expectSameChanges(ledgerChanges(events), expected);
    expect((await fetch(`http://127.0.0.1:${port(standby)}/readyz`)).status).toBe(200);
    // The hand-over shows in metrics and in `walnats status` too.
    await waitFor('walnats_active 1 on the new active instance', async () =>
      /walnats_active 1/.test(await (await fetch(`http://127.0.0.1:${port(standby)}/metrics`)).text()) || undefined, 10_000, 200);
    const after = await collectStatus({ pgUrl: suite.pgs.url(db), natsUrl: [suite.nats.url], slot: db, publication: 'walnats', prefix: 'walnats' } as never);
    expect(after.slot.leader?.name).toBe(`walnats-cdc@${os.hostname()}:${standby.pid}`);
    expect(after.slot.standbys).toBe(0);
  }, 120_000);
});

describe('poison changes', () => {
  it('under poison_policy stop, an event larger than NATS max_payload stops the daemon naming table, LSN and reason, and nothing after it is published', async () => {
    const { stream, startStreaming, sql } = await setup('poison_stop');
    const daemon = await startStreaming();
    await insertBatch(sql, 0, 3);
    await sql(`INSERT INTO ledger VALUES (100, 0, repeat('y', 2 * 1024 * 1024))`);
    await insertBatch(sql, 200, 3);
    const code = await daemon.exited;
    expect(code).not.toBe(0);
    expect(daemon.log()).toMatch(/cannot publish insert on public\.ledger at commit [0-9A-F]+\/[0-9A-F]+ seq 1 .*too_large.*max_payload/);
    const events = await readStream(suite.nc, stream);
    expect(ledgerChanges(events).map((c) => c.id)).toEqual([1, 2, 3]);
  }, 60_000);

  it('under poison_policy dead_letter, the oversized change is parked in its place and the stream goes on', async () => {
    const { db, stream, startStreaming, sql } = await setup('poison_dl', { WALNATS_POISON_POLICY: 'dead_letter' });
    await startStreaming();
    await insertBatch(sql, 0, 3);
    await sql(`INSERT INTO ledger VALUES (100, 0, repeat('y', 2 * 1024 * 1024))`);
    await insertBatch(sql, 200, 3);
    const events = await waitForAll(stream, 8);
    expect(ledgerChanges(events).map((c) => c.id)).toEqual([1, 2, 3, 201, 202, 203]);
    const parked = await readFiltered(suite.nc, stream, `walnats.${escapeToken(db)}.$deadletter.>`);
    expect(parked).toHaveLength(1);
    expect(parked[0].subject).toBe(`walnats.${escapeToken(db)}.$deadletter.public.ledger`);
    expect(parked[0].body.dead_letter).toMatchObject({ reason: 'too_large' });
    expect(parked[0].body.dead_letter.size).toBeGreaterThan(2 * 1024 * 1024);
    expect(parked[0].body.source).toMatchObject({ schema: 'public', table: 'ledger', seq: 1 });
    expect(parked[0].headers['Nats-Msg-Id']).toBe(`${parked[0].body.source.commit_lsn}:1`);
    expectCleanStream(events);
  }, 60_000);
});

describe('stream conflicts', () => {
  it('a stream whose subjects overlap another stream is a clear error that stops the daemon instead of a retry loop', async () => {
    const { db, start } = await setup('stream_overlap', { WALNATS_STREAM_NAME: 'second_daemon' });
    const jsm = await jetstreamManager(suite.nc);
    await jsm.streams.add({ name: 'squatter', subjects: [`walnats.${escapeToken(db)}.>`] });
    try {
      const refused = start();
      expect(await refused.exited).not.toBe(0);
      expect(refused.log()).toMatch(/cannot create stream second_daemon: its subjects .* overlap another stream's.*its own prefix \(--prefix\)/);
      expect(refused.log()).not.toMatch(/retrying/);
    } finally {
      await jsm.streams.delete('squatter');
    }
  });
});

describe('slot health', () => {
  it('a slot dropped while the stream holds events is a clear error, and slot_recreate starts over knowingly', async () => {
    const { db, stream, startStreaming, start, sql } = await setup('slot_dropped');
    const first = await startStreaming();
    await insertBatch(sql, 0, 5);
    await waitForAll(stream, 5);
    await first.kill('SIGTERM');
    await suite.pgs.sql('SELECT pg_drop_replication_slot($1)', [db]);
    const refused = start();
    expect(await refused.exited).not.toBe(0);
    expect(refused.log()).toMatch(/does not exist, but stream .* already holds events.*slot_recreate/);
    expect((await suite.pgs.sql('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [db])).length).toBe(0);
    const recreated = await startStreaming({ WALNATS_SLOT_RECREATE: 'true' });
    await insertBatch(sql, 100, 2);
    const events = await waitFor('the inserts after the new slot', async () => {
      const all = await readStream(suite.nc, stream).catch(() => []);
      return ledgerChanges(all).some((c) => c.id === 102) ? all : undefined;
    }, 30_000, 200);
    expect(ledgerChanges(events).filter((c) => c.op === 'c').map((c) => c.id)).toEqual([1, 2, 3, 4, 5, 101, 102]);
    expect(recreated.log()).toMatch(/created replication slot/);
    // The documented recovery: the new slot's snapshot publishes the rows as reads.
    expect(events.filter((e) => e.body.op === 'r' && e.body.source.table === 'ledger').map((e) => Number(e.body.after.id)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
  }, 60_000);

  it('a role that may not create a FOR ALL TABLES publication stops the daemon with the reason instead of retrying for ever', async () => {
    const { db, start } = await setup('no_superuser');
    await suite.pgs.sql(`CREATE ROLE cdc_user LOGIN REPLICATION`);
    await suite.pgs.sql(`GRANT CREATE ON DATABASE "${db}" TO cdc_user`);
    const d = start({ WALNATS_PG_URL: suite.pgs.url(db).replace('postgres@', 'cdc_user@') });
    expect(await d.exited).not.toBe(0);
    expect(d.log()).toMatch(/must be superuser to create FOR ALL TABLES publication/);
    expect(d.log()).toMatch(/--tables schema\.table/);
    expect(d.log()).not.toMatch(/retrying in/);
  }, 60_000);

  it('a slot invalidated by max_slot_wal_keep_size is a clear error with the recovery, not a silent restart', async () => {
    const { db, stream, startStreaming, start, sql } = await setup('slot_lost');
    const first = await startStreaming();
    await insertBatch(sql, 0, 5);
    await waitForAll(stream, 5);
    await first.kill('SIGTERM');
    await suite.pgs.sql(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`);
    await suite.pgs.sql('SELECT pg_reload_conf()');
    try {
      // Push the WAL far past the limit while the daemon is away, then let a checkpoint
      // remove the segments the slot still needed.
      await waitFor('the slot to be invalidated', async () => {
        await sql(`CREATE TABLE IF NOT EXISTS filler (t text); INSERT INTO filler SELECT repeat(md5(g::text), 64) FROM generate_series(1, 20000) g`);
        await suite.pgs.sql('SELECT pg_switch_wal()');
        await suite.pgs.sql('CHECKPOINT');
        const [row] = await suite.pgs.sql<{ wal_status: string }>('SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [db]);
        return row.wal_status === 'lost' || undefined;
      }, 60_000, 100);
    } finally {
      await suite.pgs.sql('ALTER SYSTEM RESET max_slot_wal_keep_size');
      await suite.pgs.sql('SELECT pg_reload_conf()');
    }
    const refused = start();
    expect(await refused.exited).not.toBe(0);
    expect(refused.log()).toMatch(/has been invalidated \(wal_status = lost, max_slot_wal_keep_size exceeded\).*pg_drop_replication_slot/);
    expect(refused.log()).not.toMatch(/retrying in/);
  }, 120_000);

  it('heartbeats go through the WAL and arrive on the $heartbeat subject', async () => {
    const { db, stream, startStreaming } = await setup('heartbeat', { WALNATS_HEARTBEAT_INTERVAL: '200ms' });
    await startStreaming();
    const beats = await waitFor('three heartbeats', async () => {
      const got = await readFiltered(suite.nc, stream, `walnats.${escapeToken(db)}.$heartbeat`).catch(() => []);
      return got.length >= 3 ? got : undefined;
    }, 20_000, 200);
    expect(beats[0].body.op).toBe('m');
    expect(beats[0].body.message.prefix).toBe('walnats.heartbeat');
    expect(beats[0].body.message.transactional).toBe(false);
  }, 60_000);
});

describe('snapshot modes', () => {
  it('snapshot_mode initial_only publishes the existing rows as reads, then exits 0', async () => {
    const { db, stream, start, sql } = await setup('initial_only', { WALNATS_SNAPSHOT_MODE: 'initial_only' });
    await insertBatch(sql, 0, 50);
    const d = start();
    expect(await d.exited).toBe(0);
    expect(d.log()).toMatch(/initial snapshot is complete; stopping/);
    const events = await readStream(suite.nc, stream);
    const reads = events.filter((e) => e.body.op === 'r' && e.body.source?.table === 'ledger');
    expect(reads.map((e) => Number(e.body.after.id)).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(reads.every((e) => e.subject === `walnats.${escapeToken(db)}.public.ledger.read` && e.body.source.snapshot === true)).toBe(true);
    expect(ledgerChanges(events)).toEqual([]);
  }, 60_000);

  it('walnats snapshot in a terminal draws a progress bar until the backfill is done', async () => {
    const { db, start, sql } = await setup('progress_bar', { WALNATS_SNAPSHOT_MODE: 'never' });
    await insertBatch(sql, 0, 20_000);
    const d = start();
    await waitFor('daemon streaming', async () => /streaming changes/.test(d.log()) || undefined, 30_000);
    // `script` gives the command a pseudo-terminal, as a person at a shell would have.
    const cmd = `${process.execPath} ${BIN} snapshot public.ledger`;
    const { stdout } = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], {
      env: { ...process.env, WALNATS_PG_URL: suite.pgs.url(db), WALNATS_NATS_URL: suite.nats.url, WALNATS_LOG_PRETTY: 'false' },
      timeout: 90_000,
    });
    expect(stdout).toMatch(/backfill bf-[\w-]+ requested/);
    expect(stdout).toMatch(/\[#{30}\] 100% .*20000(\/~\d+)? rows/);
  }, 120_000);
});
