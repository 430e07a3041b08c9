/**
 * walnats cdc against a 3-node JetStream cluster: a stream with 3 replicas, the seed list of
 * all three servers, and the stream's leader killed (SIGKILL) in the middle of a load — twice,
 * with the first one back in between. After each: every committed change exactly once, in
 * commit order.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { spawnDaemon, type DaemonProcess } from '../harness/daemon-process.ts';
import { streamLastSeq, waitForLastSeq } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { ledgerChanges, expectCleanStream, expectSameChanges } from '../harness/verify.ts';
import { loadLedger } from '../harness/process-suite.ts';
import { startNatsCluster, type NatsCluster } from '../../src/local/nats-cluster.ts';
import { connectNats } from '../../src/nats-connection.ts';
import { defaultStreamName } from '../../src/events/subject.ts';

let pgs: PgServer;
let cluster: NatsCluster;
let nc: NatsConnection;
const running: DaemonProcess[] = [];

beforeAll(async () => {
  [pgs, cluster] = await Promise.all([startPostgres(), startNatsCluster(3)]);
  nc = await connectNats({ natsUrl: cluster.urls }, 'cluster-test-reader');
}, 120_000);
afterEach(async () => {
  await Promise.all(running.splice(0).map((d) => d.kill('SIGKILL')));
});
afterAll(async () => {
  await nc?.close();
  await Promise.all([pgs?.destroy(), cluster?.destroy()]);
});

const load = (db: string, txns: number, rows: number, from: number, onTxn?: (t: number) => Promise<void>) =>
  loadLedger(pgs.url(db), txns, rows, from, onTxn && ((t) => onTxn(t)));

async function streamLeader(stream: string): Promise<string> {
  return waitFor(`a leader for ${stream}`, async () => {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const info = await jsm.streams.info(stream);
    return info.cluster?.leader || undefined;
  }, 60_000, 250);
}

describe('a 3-node JetStream cluster', () => {
  it('with stream_replicas 3 and all three seeds, killing the stream leader mid-load twice loses and repeats nothing', async () => {
    const db = await pgs.createDatabase('cluster');
    await pgs.sql('CREATE TABLE ledger (id bigint PRIMARY KEY, v int, pad text)', [], db);
    const stream = defaultStreamName('walnats', db);
    const daemon = spawnDaemon({
      WALNATS_PG_URL: pgs.url(db),
      WALNATS_NATS_URL: cluster.urls.join(','),
      WALNATS_SLOT: db,
      WALNATS_STREAM_REPLICAS: '3',
      WALNATS_STATUS_INTERVAL: '200ms',
      WALNATS_PUBLISH_ACK_TIMEOUT: '5s',
    });
    running.push(daemon);
    await waitFor('daemon streaming', async () => /streaming changes/.test(daemon.log()) || undefined, 60_000);

    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    expect(info.config.num_replicas).toBe(3);
    expect(info.cluster?.replicas ?? []).toHaveLength(2);

    const killed: string[] = [];
    const expected = await load(db, 240, 20, 0, async (t) => {
      if (t === 60 || t === 180) {
        const leader = await streamLeader(stream);
        killed.push(leader);
        await cluster.node(leader).kill();
      }
      if (t === 120) {
        // The first victim comes back (same store) before the second kill, so that the
        // cluster keeps a quorum of two; and the daemon catches up, so that the second kill
        // hits a session that is publishing, not one waiting out its backoff.
        await cluster.node(killed[0]).start();
        await waitFor('the daemon to catch up', async () => (await streamLastSeq(nc, stream).catch(() => 0)) >= (t + 1) * 21 || undefined, 60_000, 250);
      }
    });
    expect(killed).toHaveLength(2);
    const events = await waitForLastSeq(nc, stream, expected.length, 90_000);
    expectCleanStream(events);
    expectSameChanges(ledgerChanges(events), expected);
    // The daemon itself never exited: it rode through both leader changes.
    expect(daemon.log()).not.toMatch(/"level":60/);
    const newLeader = await streamLeader(stream);
    expect(newLeader).not.toBe(killed[1]);
    await cluster.node(killed[1]).start();
  }, 150_000);
});
