/**
 * examples/consumer-ts/consume.ts against a real daemon: a durable consumer filtered by
 * table and op receives the events, keeps its position across restarts, and skips a
 * redelivered message by its Nats-Msg-Id.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { waitFor } from '../harness/ports.ts';
import { connectNats } from '../../src/nats-connection.ts';
import { consume, type ChangeEvent, type Delivery } from '../../examples/consumer-ts/consume.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
let pgs: PgServer;
let nats: NatsServer;
let daemon: TestDaemon;
let nc: NatsConnection;
let db: string;

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres({ settings: { synchronous_commit: 'on' } }), startNats()]);
  db = await pgs.createDatabase('consumer');
  // The sample schema of docker-compose.yml.
  await pgs.sql(fs.readFileSync(path.join(ROOT, 'deploy/compose/sample-schema.sql'), 'utf8'), [], db);
  daemon = await startTestDaemon(pgs.url(db), nats.url, db, { slot: `consumer_${process.pid}` });
  await waitFor('daemon streaming', async () => daemon.daemon.ready() || undefined, 30_000, 50);
  nc = await connectNats({ natsUrl: [nats.url] }, 'consumer-test');
});

afterAll(async () => {
  await nc?.close();
  await daemon?.stop();
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

type Got = { event: ChangeEvent; d: Delivery };

describe('examples/consumer-ts', () => {
  it('receives the inserts and updates of one table and keeps its position across runs', async () => {
    await pgs.sql(
      `INSERT INTO orders (customer_id, qty, price) VALUES (1, 7, '70.00');
       UPDATE orders SET qty = 8 WHERE qty = 7;
       INSERT INTO customers (name) VALUES ('not an order');
       DELETE FROM orders WHERE qty = 8;`,
      [],
      db,
    );
    const got: Got[] = [];
    const run1 = await consume({ nc, db, schema: 'public', table: 'orders', ops: ['insert', 'update'], durable: 'orders-sink', handle: (event, d) => void got.push({ event, d }) });
    await waitFor('insert and update', async () => got.length >= 2 || undefined, 30_000, 50);
    // Nothing else arrives: no delete, no customers.
    await new Promise((r) => setTimeout(r, 500));
    expect(got.map((g) => [g.d.subject, g.event.op])).toEqual([
      [`walnats.${db}.public.orders.insert`, 'c'],
      [`walnats.${db}.public.orders.update`, 'u'],
    ]);
    expect(got[0].event.after).toMatchObject({ qty: 7, price: '70.00', customer_id: 1 });
    expect(got[1].event.after).toMatchObject({ qty: 8 });
    for (const g of got) expect(g.d.msgId).toBe(`${g.event.source.commit_lsn}:${g.event.source.seq}`);
    // Every field of the events is in the envelope reference of docs/consumers.md.
    const doc = fs.readFileSync(path.join(ROOT, 'docs/consumers.md'), 'utf8');
    for (const g of got) {
      for (const k of Object.keys(g.event)) expect(doc, k).toContain(`| \`${k}\``);
      for (const k of Object.keys(g.event.source)) expect(doc, `source.${k}`).toMatch(new RegExp(`\`source\\.${k}\``));
    }
    await run1.stop();

    // The durable consumer kept its position: a second run gets only what came after.
    await pgs.sql(`INSERT INTO orders (customer_id, qty, price) VALUES (2, 9, '9.00')`, [], db);
    const got2: Got[] = [];
    const run2 = await consume({ nc, db, schema: 'public', table: 'orders', ops: ['insert', 'update'], durable: 'orders-sink', handle: (event, d) => void got2.push({ event, d }) });
    await waitFor('the new insert', async () => got2.length >= 1 || undefined, 30_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    await run2.stop();
    expect(got2.map((g) => g.event.after?.qty)).toEqual([9]);
  });

  it('skips a message delivered again after it was handled (ack lost), by its Nats-Msg-Id', async () => {
    const seen = new Set<string>();
    const handled: string[] = [];
    let crashOnce = true;
    const run = await consume({
      nc, db, schema: 'public', table: 'customers', ops: ['insert'], durable: 'customers-sink', seen, retryDelayMs: 100,
      handle(event, d) {
        handled.push(String(event.after?.name));
        if (crashOnce && event.after?.name === 'Barbara Liskov') {
          // The write reached the sink, then the process failed before the ack:
          // JetStream delivers the message again.
          crashOnce = false;
          seen.add(d.msgId);
          throw new Error('simulated crash between write and ack');
        }
      },
    });
    await pgs.sql(`INSERT INTO customers (name) VALUES ('Barbara Liskov')`, [], db);
    await waitFor('the redelivery to be skipped', async () => run.duplicates >= 1 || undefined, 30_000, 50);
    await run.stop();
    // Handled once, skipped once; the customer inserted by the first test came before it.
    expect(handled).toEqual(['not an order', 'Barbara Liskov']);
    expect(run.duplicates).toBe(1);
  });

  it('runs as a command: prints the events of a table as JSON lines, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'examples/consumer-ts/consume.ts'), db, 'public.orders', 'delete'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, NATS_URL: nats.url, DURABLE: 'cli-deletes' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor('the delete event line', async () => out.includes('\n') || undefined, 30_000, 50);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, err).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l));
    // The first test deleted the order with qty 8 (REPLICA IDENTITY FULL: the whole old row).
    expect(lines).toEqual([expect.objectContaining({ op: 'd', after: null, before: expect.objectContaining({ qty: 8, price: '70.00' }) })]);
    expect(lines[0].id).toMatch(/^[0-9A-F]+\/[0-9A-F]+:\d+$/);
  });
});
