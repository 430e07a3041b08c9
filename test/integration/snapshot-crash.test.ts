/**
 * `walnats cdc` as a real process, SIGKILLed in the middle of a backfill and in the middle of
 * its initial snapshot, with writers running: the restarted daemon resumes from the last
 * finished chunk (an unfinished initial snapshot continues as a backfill), and replaying the
 * reads then the live events still gives exactly the table.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

// 100,000-row tables with writers running: slow on a loaded 2-core machine, never a timing check.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 120_000 });
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { spawnDaemon, type DaemonProcess } from '../harness/daemon-process.ts';
import { readFiltered, waitForSubject, type StoredEvent } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { connectNats } from '../../src/nats-connection.ts';
import { defaultStreamName, escapeToken } from '../../src/events/subject.ts';
import { controlSubject } from '../../src/snapshot/control.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/walnats.js');
let pgs: PgServer;
let nats: NatsServer;
let nc: NatsConnection;
const running: DaemonProcess[] = [];

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  nc = await connectNats({ natsUrl: [nats.url] }, 'snapshot-crash-reader');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.kill('SIGKILL')));
});
afterAll(async () => {
  await nc?.close();
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

async function setup(name: string, mode: string) {
  const db = await pgs.createDatabase(name);
  await pgs.sql(`CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, note text)`, [], db);
  await pgs.sql(`INSERT INTO big SELECT g, g % 7, repeat('x', 200) || g FROM generate_series(1, 100000) g`, [], db);
  const env = { WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, WALNATS_SLOT: db, WALNATS_STATUS_INTERVAL: '200ms', WALNATS_SNAPSHOT_MODE: mode };
  const start = () => {
    const d = spawnDaemon(env);
    running.push(d);
    return d;
  };
  return { db, env, stream: defaultStreamName('walnats', db), start };
}

function startWriters(db: string): () => Promise<void> {
  let stop = false;
  const loop = (async () => {
    const c = new pg.Client({ connectionString: pgs.url(db) });
    await c.connect();
    let next = 100_001;
    while (!stop) {
      const r = Math.random();
      const id = 1 + Math.floor(Math.random() * (next - 1));
      if (r < 0.4) await c.query(`INSERT INTO big VALUES ($1, 0, 'new')`, [next++]);
      else if (r < 0.8) await c.query(`UPDATE big SET v = v + 1, note = 'upd' WHERE id = $1`, [id]);
      else await c.query(`DELETE FROM big WHERE id = $1`, [id]);
    }
    await c.end();
  })();
  return async () => {
    stop = true;
    await loop;
  };
}

async function readsStored(stream: string, db: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream, { subjects_filter: `walnats.${escapeToken(db)}.public.big.read` });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

async function finishedBackfill(stream: string, db: string, pick: (e: StoredEvent) => boolean, daemon?: DaemonProcess): Promise<StoredEvent> {
  let found: StoredEvent | undefined;
  await waitFor('backfill finished', async () => {
    try {
      found = (await readFiltered(nc, stream, controlSubject('walnats', db))).find((e) => e.body.event === 'finished' && pick(e));
    } catch {
      return undefined;
    }
    return found;
  }, 180_000, 300).catch((err: Error) => {
    // The daemon's own account is what tells a slow run from a stuck one.
    throw new Error(`${err.message}\n--- daemon log (last 40 lines) ---\n${daemon?.log().split('\n').slice(-40).join('\n') ?? '(no daemon)'}`);
  });
  return found!;
}

async function expectTableReplayed(db: string, stream: string): Promise<StoredEvent[]> {
  const tag = `end${Math.random().toString(36).slice(2)}`;
  await pgs.sql(`SELECT pg_logical_emit_message(true, $1, 'x')`, [tag], db);
  await waitForSubject(nc, stream, `walnats.${escapeToken(db)}.$message.${tag}`, 1, 120_000);
  const events = await readFiltered(nc, stream, `walnats.${escapeToken(db)}.public.big.>`);
  const rows = new Map<number, unknown>();
  for (const e of events) {
    const b = e.body;
    if (b.op === 'r' || b.op === 'c') rows.set(b.after.id, b.after);
    else if (b.op === 'u') {
      if (b.before) rows.delete(b.before.id);
      rows.set(b.after.id, b.after);
    } else if (b.op === 'd') rows.delete(b.before.id);
  }
  const table = (await pgs.sql('SELECT id, v, note FROM big ORDER BY id', [], db)) as Array<{ id: number }>;
  const replayed = [...rows.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r);
  expect(replayed.length).toBe(table.length);
  const firstDiff = table.findIndex((r, i) => JSON.stringify(r) !== JSON.stringify(replayed[i]));
  expect(firstDiff === -1 ? null : { table: table[firstDiff], replayed: replayed[firstDiff] }).toBeNull();
  // Exactly once: no message id twice.
  expect(new Set(events.map((e) => e.headers['Nats-Msg-Id'])).size).toBe(events.length);
  return events;
}

describe('crash during a backfill', () => {
  it('a daemon killed mid-backfill resumes from the last finished chunk and converges', async () => {
    const { db, env, stream, start } = await setup('snapcrashbf', 'never');
    let d = start();
    await waitFor('daemon streaming', async () => /streaming changes/.test(d.log()) || undefined, 30_000);
    const stopWriters = startWriters(db);
    // The request through the real command line (not a terminal: it returns at once).
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'snapshot', 'public.big'], { env: { ...process.env, ...env } });
    const request = JSON.parse(stdout) as { id: string; tables: string[] };
    expect(request.tables).toEqual(['public.big']);
    await waitFor('a part of the backfill stored', async () => ((await readsStored(stream, db)) >= 25_000) || undefined, 60_000, 20);
    await d.kill('SIGKILL');
    const before = await readsStored(stream, db);
    expect(before).toBeLessThan(100_000);

    d = start();
    const finished = await finishedBackfill(stream, db, (e) => e.body.snapshot.id === request.id, d);
    await stopWriters();
    expect(finished.body.table).toMatchObject({ table: 'big', done: true });
    expect(d.log()).toMatch(/resuming after the last event stored/);
    await expectTableReplayed(db, stream);
  });
});

describe('crash during the initial snapshot', () => {
  it('a daemon killed mid-snapshot continues the snapshot as a backfill and converges', async () => {
    const { db, stream, start } = await setup('snapcrashinit', 'initial');
    const stopWriters = startWriters(db);
    let d = start();
    await waitFor('a part of the snapshot stored', async () => {
      try {
        return ((await readsStored(stream, db)) >= 20_000) || undefined;
      } catch {
        return undefined;
      }
    }, 60_000, 20);
    await d.kill('SIGKILL');
    expect(await readsStored(stream, db)).toBeLessThan(100_000);

    d = start();
    await waitFor('daemon streaming', async () => /streaming changes/.test(d.log()) || undefined, 30_000);
    expect(d.log()).toMatch(/initial snapshot did not finish/);
    const control = await readFiltered(nc, stream, controlSubject('walnats', db));
    const snapshotId = control[0].body.snapshot.id as string;
    await finishedBackfill(stream, db, (e) => e.body.snapshot.id === snapshotId, d);
    await stopWriters();
    const events = await expectTableReplayed(db, stream);
    // The reads of the first attempt sit at the slot's consistent point, those of the resumed
    // part at backfill watermarks after it.
    expect(new Set(events.filter((e) => e.body.op === 'r').map((e) => e.body.source.lsn)).size).toBeGreaterThan(1);
  });
});
