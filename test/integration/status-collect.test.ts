import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { loadConfig } from '../../src/config.ts';
import { collectStatus, formatStatus, statusHasErrors } from '../../src/status.ts';
import { defaultStreamName } from '../../src/events/subject.ts';

let pgs: PgServer;
let nats: NatsServer;
let nc: NatsConnection;
let db: string;

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  nc = await connect({ servers: nats.url });
  db = await pgs.createDatabase('status');
  await pgs.sql('CREATE TABLE orders (id serial PRIMARY KEY, qty int)', [], db);
  await pgs.sql('CREATE TABLE items (id serial PRIMARY KEY)', [], db);
  await pgs.sql('CREATE PUBLICATION walnats FOR TABLE orders, items', [], db);
  await pgs.sql("SELECT pg_create_logical_replication_slot('walnats', 'pgoutput')", [], db);
});

afterAll(async () => {
  await nc?.close();
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

function config(extra: Record<string, string> = {}) {
  return loadConfig({ argv: ['status'], env: { WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, ...extra }, stdoutIsTTY: false }).config;
}

describe('collectStatus', () => {
  it('reports the slot, its lag after writes, the publication, and a missing stream', async () => {
    await pgs.sql('INSERT INTO orders (qty) SELECT g FROM generate_series(1, 100) g', [], db);
    const s = await collectStatus(config());
    expect(s.database).toBe(db);
    expect(s.serverLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(s.slot).toMatchObject({ name: 'walnats', exists: true, active: false, activePid: null, plugin: 'pgoutput', walStatus: 'reserved' });
    expect(s.slot.confirmedFlushLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(s.slot.restartLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(s.slot.lagBytes).toBeGreaterThan(0);
    expect(s.publication).toEqual({ name: 'walnats', exists: true, allTables: false, tables: ['public.items', 'public.orders'] });
    expect(s.stream).toMatchObject({ name: defaultStreamName('walnats', db), exists: false, lastPosition: null });
    expect(s.stream.error).toBeUndefined();
    expect(statusHasErrors(s)).toBe(false);
    const text = formatStatus(s);
    expect(text).toMatch(/slot\s+walnats: inactive/);
    expect(text).toMatch(/lag\s+\d/);
    expect(text).toMatch(/stream\s+\S+: missing/);
    // Two pids, each said for what it is: the slot's walsender, and the leader's lock connection.
    const active = formatStatus({ ...s, slot: { ...s.slot, active: true, activePid: 123, leader: { pid: 456, name: 'walnats-cdc@h', addr: null } } });
    expect(active).toMatch(/slot\s+walnats: active \(walsender pid 123\)/);
    expect(active).toMatch(/active instance\s+walnats-cdc@h \(holds the leader lock on backend pid 456\)/);
  });

  it('reports missing slot and publication', async () => {
    const s = await collectStatus(config({ WALNATS_SLOT: 'other', WALNATS_PUBLICATION: 'other' }));
    expect(s.slot).toMatchObject({ name: 'other', exists: false, lagBytes: null });
    expect(s.publication).toMatchObject({ name: 'other', exists: false, tables: [] });
    expect(formatStatus(s)).toMatch(/slot\s+other: missing/);
  });

  it('reads stream state and the last published position from the headers', async () => {
    const name = defaultStreamName('walnats', db);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects: [`walnats.${db}.>`] });
    const js = jetstream(nc);
    for (const [lsn, seq] of [['0/16B37F0', 1], ['0/16B37F0', 2], ['0/16B4000', 1]] as const) {
      const h = headers();
      h.set('Nats-Msg-Id', `${lsn}:${seq}`);
      h.set('Walnats-Op', 'insert');
      h.set('Walnats-Commit-Lsn', lsn);
      h.set('Walnats-Seq', String(seq));
      await js.publish(`walnats.${db}.public.orders.insert`, '{}', { headers: h });
    }
    const s = await collectStatus(config());
    expect(s.stream).toMatchObject({ name, exists: true, messages: 3, firstSeq: 1, lastSeq: 3, consumers: 0, lastPosition: { commitLsn: '0/16B4000', seq: 1 } });
    expect(s.stream.bytes).toBeGreaterThan(0);
    expect(formatStatus(s)).toMatch(/last position\s+0\/16B4000 seq 1/);
    // The JSON form is what `walnats status --json` prints.
    expect(JSON.parse(JSON.stringify(s)).stream.lastPosition).toEqual({ commitLsn: '0/16B4000', seq: 1 });
  });

  it('uses stream_name when set', async () => {
    const s = await collectStatus(config({ WALNATS_STREAM_NAME: 'not_there' }));
    expect(s.stream).toMatchObject({ name: 'not_there', exists: false });
  });

  it('reports an unreachable NATS and keeps the Postgres part', async () => {
    const s = await collectStatus(config({ WALNATS_NATS_URL: 'nats://127.0.0.1:1' }), { natsTimeoutMs: 2000 });
    expect(s.slot.exists).toBe(true);
    expect(s.stream.error).toMatch(/cannot connect to NATS/);
    expect(statusHasErrors(s)).toBe(true);
    expect(formatStatus(s)).toMatch(/ERROR cannot connect to NATS/);
  });

  it('is what `walnats status --json` prints, with exit code 0', async () => {
    const bin = fileURLToPath(new URL('../../bin/walnats.js', import.meta.url));
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [bin, 'status', '--json', '--nats-url', nats.url],
        { env: { PATH: process.env.PATH, WALNATS_PG_URL: pgs.url(db) } },
        (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ database: db, slot: { exists: true }, stream: { exists: true, messages: 3 } });
  });
});
