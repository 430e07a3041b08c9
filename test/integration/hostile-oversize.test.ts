/**
 * A 100 MB text value: its event cannot be published (nats-server's max_payload is 1 MB by
 * default). Under poison_policy stop the process exits non-zero naming table, LSN and reason,
 * with everything before it in the stream and nothing after; restarted with dead_letter, the
 * change is parked in its place and the rows after it follow in order. Never a crash, never a
 * silent drop.
 */
import { describe, expect, it } from 'vitest';
import { readStream, waitForSubject } from '../harness/stream.ts';
import { expectCleanStream } from '../harness/verify.ts';
import { useProcessSuite } from '../harness/process-suite.ts';
import { escapeToken } from '../../src/events/subject.ts';

const suite = useProcessSuite('oversize-reader');

const SIZE = 100 * 1024 * 1024;

describe('a 100 MB value', () => {
  it('stops the daemon under poison_policy stop (table, LSN, reason), then dead_letter parks it in place and the rows after it follow', async () => {
    const { db, stream, start, startStreaming } = await suite.setup('huge');
    await suite.pgs.sql('CREATE TABLE big (id int PRIMARY KEY, body text)', [], db);
    const first = await startStreaming();

    await suite.pgs.sql(`INSERT INTO big VALUES (1, 'before')`, [], db);
    await suite.pgs.sql(`INSERT INTO big VALUES (2, repeat('x', ${SIZE}))`, [], db);
    await suite.pgs.sql(`INSERT INTO big VALUES (3, 'after')`, [], db);

    const code = await Promise.race([first.exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 45_000))]);
    expect(code, first.log().slice(-2000)).not.toBe('alive');
    expect(code).not.toBe(0);
    expect(first.log()).toMatch(/cannot publish insert on public\.big at commit [0-9A-F]+\/[0-9A-F]+ seq 1 \(lsn [0-9A-F]+\/[0-9A-F]+\): too_large: event of \d{9} bytes exceeds the NATS max_payload of 1048576 bytes/);
    const held = (await readStream(suite.nc, stream)).filter((e) => e.body.op === 'c');
    expect(held.map((e) => e.body.after.id)).toEqual([1]);

    // The fix chosen here: park it. The restarted daemon resumes at that change.
    const second = start({ WALNATS_POISON_POLICY: 'dead_letter' });
    await waitForSubject(suite.nc, stream, `walnats.${escapeToken(db)}.public.big.insert`, 2, 45_000);
    const events = await readStream(suite.nc, stream);
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
