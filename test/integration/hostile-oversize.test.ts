/**
 * A 100 MB text value: its event cannot be published (nats-server's max_payload is 1 MB by
 * default). Under poison_policy stop the process exits non-zero naming table, LSN and reason,
 * with everything before it in the stream and nothing after; restarted with dead_letter, the
 * change is parked in its place and the rows after it follow in order. Never a crash, never a
 * silent drop.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { spawnDaemon, type DaemonProcess } from '../harness/daemon-process.ts';
import { readStream, waitForSubject } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { expectCleanStream } from '../harness/verify.ts';
import { connectNats } from '../../src/nats-connection.ts';
import { defaultStreamName, escapeToken } from '../../src/events/subject.ts';
import type { NatsConnection } from '@nats-io/transport-node';

let pgs: PgServer;
let nats: NatsServer;
let nc: NatsConnection;
const running: DaemonProcess[] = [];

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  nc = await connectNats({ natsUrl: [nats.url] }, 'oversize-reader');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.kill('SIGKILL')));
});
afterAll(async () => {
  await nc?.close();
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

const SIZE = 100 * 1024 * 1024;

describe('a 100 MB value', () => {
  it('stops the daemon under poison_policy stop (table, LSN, reason), then dead_letter parks it in place and the rows after it follow', async () => {
    const db = await pgs.createDatabase('huge');
    await pgs.sql('CREATE TABLE big (id int PRIMARY KEY, body text)', [], db);
    const stream = defaultStreamName('walnats', db);
    const env = { WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, WALNATS_SLOT: db, WALNATS_STATUS_INTERVAL: '200ms' };
    const first = spawnDaemon(env);
    running.push(first);
    await waitFor('daemon streaming', async () => /streaming changes/.test(first.log()) || undefined, 30_000);

    await pgs.sql(`INSERT INTO big VALUES (1, 'before')`, [], db);
    await pgs.sql(`INSERT INTO big VALUES (2, repeat('x', ${SIZE}))`, [], db);
    await pgs.sql(`INSERT INTO big VALUES (3, 'after')`, [], db);

    const code = await Promise.race([first.exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 45_000))]);
    expect(code, first.log().slice(-2000)).not.toBe('alive');
    expect(code).not.toBe(0);
    expect(first.log()).toMatch(/cannot publish insert on public\.big at commit [0-9A-F]+\/[0-9A-F]+ seq 1 \(lsn [0-9A-F]+\/[0-9A-F]+\): too_large: event of \d{9} bytes exceeds the NATS max_payload of 1048576 bytes/);
    const held = (await readStream(nc, stream)).filter((e) => e.body.op === 'c');
    expect(held.map((e) => e.body.after.id)).toEqual([1]);

    // The fix chosen here: park it. The restarted daemon resumes at that change.
    const second = spawnDaemon({ ...env, WALNATS_POISON_POLICY: 'dead_letter' });
    running.push(second);
    await waitForSubject(nc, stream, `walnats.${escapeToken(db)}.public.big.insert`, 2, 45_000);
    const events = await readStream(nc, stream);
    expectCleanStream(events);
    const big = events.filter((e) => e.body.source?.table === 'big' && e.subject.split('.')[2] !== '$schema');
    expect(big.map((e) => [e.subject.split('.').slice(2).join('.'), e.body.after?.id ?? null])).toEqual([
      ['public.big.insert', 1],
      ['$deadletter.public.big', null],
      ['public.big.insert', 3],
    ]);
    expect(big[1].body.dead_letter).toMatchObject({ reason: 'too_large' });
    expect(big[1].body.dead_letter.size).toBeGreaterThan(SIZE);
    expect(big[1].raw.length).toBeLessThan(64 * 1024);
    expect(second.log()).toMatch(/dead-lettered insert on public\.big/);
  }, 120_000);
});
