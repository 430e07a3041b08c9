/**
 * In-process micro-benchmark of the CDC hot path: build events from decoded changes
 * (envelope.ts) and publish them pipelined into JetStream (publisher.ts), against a local
 * nats-server. Compares source trees side by side in one process, alternating rounds:
 *
 *   npx tsx bench/hotpath.ts [srcDir ...]      (default: ./src)
 *   e.g. npx tsx bench/hotpath.ts /tmp/base/src ./src
 *
 *   HOTPATH_N=50000 events per round, HOTPATH_ROUNDS=4, HOTPATH_TXN=10 rows per transaction
 *
 * Reports per tree: events/s (wall, until the last ack) and CPU µs per event of this process
 * (nats-server runs in its own process), median over rounds.
 */
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNats } from '../test/harness/nats.ts';

const N = Number(process.env.HOTPATH_N ?? 50_000);
const ROUNDS = Number(process.env.HOTPATH_ROUNDS ?? 4);
const PER_TXN = Number(process.env.HOTPATH_TXN ?? 10);
const roots = (process.argv.slice(2).length ? process.argv.slice(2) : ['./src']).map((r) => path.resolve(r));

interface Impl {
  root: string;
  createEventBuilder: (o: unknown) => { build(c: unknown): unknown };
  createPublisher: (nc: unknown, o: unknown) => {
    send(ev: unknown): boolean;
    whenRoom(): Promise<void>;
    checkpoint(fn: () => void): void;
    flush(): Promise<void>;
    close(): Promise<void>;
  };
}

const relation = {
  oid: 16384,
  schema: 'public',
  name: 't',
  replicaIdentity: 'default',
  columns: [
    { name: 'id', typeOid: 20, typeMod: -1, isKey: true },
    { name: 'a', typeOid: 23, typeMod: -1, isKey: false },
    { name: 'b', typeOid: 25, typeMod: -1, isKey: false },
    { name: 'ts', typeOid: 1184, typeMod: -1, isKey: false },
  ],
};

function changes(n: number): unknown[] {
  const out: unknown[] = [];
  let lsn = 0x16b374d848n;
  for (let i = 0; i < n; i += PER_TXN) {
    const rows = Math.min(PER_TXN, n - i);
    const commitLsn = lsn + BigInt(rows * 120 + 40);
    for (let s = 1; s <= rows; s++) {
      const g = i + s;
      lsn += 120n;
      out.push({
        kind: 'insert',
        relation,
        before: null,
        beforeKind: null,
        after: [String(g), String(g), 'ab'.repeat(32), '2026-12-03 15:00:00.123456+00'],
        commitLsn,
        seq: s,
        lsn,
        xid: 1000 + i,
        commitTimeUs: 849_000_000_000_000n,
      });
    }
    lsn = commitLsn + 48n;
  }
  return out;
}

const convert = (text: string, oid: number) => (oid === 20 || oid === 23 ? text : JSON.stringify(text));

async function round(impl: Impl, nc: Awaited<ReturnType<typeof connect>>, evs: unknown[], tag: string) {
  const jsm = await jetstreamManager(nc);
  const stream = `HOT_${tag}`;
  await jsm.streams.add({ name: stream, subjects: [`${tag}.>`] });
  const builder = impl.createEventBuilder({ prefix: tag, database: 'db', convert, now: () => 1_764_774_000_000 });
  const pub = impl.createPublisher(nc, { stream, window: 4096, expectedLastSeq: 0 });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let built = 0;
  for (const c of evs) {
    const ev = builder.build(c);
    built++;
    if (!pub.send(ev)) await pub.whenRoom();
  }
  await pub.flush();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await pub.close();
  await jsm.streams.delete(stream);
  return { rate: (built / ms) * 1000, cpuUsPerEvent: (cpu.user + cpu.system) / built };
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main() {
  const impls: Impl[] = [];
  for (const root of roots) {
    const env = await import(path.join(root, 'events/envelope.ts'));
    const pub = await import(path.join(root, 'publisher/publisher.ts'));
    impls.push({ root, createEventBuilder: env.createEventBuilder, createPublisher: pub.createPublisher });
  }
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  const evs = changes(N);
  const res = impls.map(() => ({ rate: [] as number[], cpu: [] as number[] }));
  try {
    // Warm-up round for each (JIT), not counted.
    for (let i = 0; i < impls.length; i++) await round(impls[i], nc, evs.slice(0, 10_000), `w${i}`);
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate the order each round so drift affects all trees alike.
      const order = r % 2 ? [...impls.keys()].reverse() : [...impls.keys()];
      for (const i of order) {
        const x = await round(impls[i], nc, evs, `r${r}i${i}`);
        res[i].rate.push(x.rate);
        res[i].cpu.push(x.cpuUsPerEvent);
        process.stderr.write(`round ${r} ${impls[i].root}: ${x.rate.toFixed(0)} ev/s, ${x.cpuUsPerEvent.toFixed(2)} µs CPU/event\n`);
      }
    }
  } finally {
    await nc.close();
    await nats.destroy();
  }
  for (let i = 0; i < impls.length; i++) {
    console.log(`${impls[i].root}: median ${median(res[i].rate).toFixed(0)} ev/s, ${median(res[i].cpu).toFixed(2)} µs CPU/event (${N} events × ${ROUNDS} rounds, ${PER_TXN}/txn)`);
  }
  if (impls.length > 1) {
    const b = 0;
    for (let i = 1; i < impls.length; i++) {
      console.log(`  ${path.basename(path.dirname(impls[i].root))}/${path.basename(impls[i].root)} vs first: rate × ${(median(res[i].rate) / median(res[b].rate)).toFixed(2)}, CPU/event × ${(median(res[i].cpu) / median(res[b].cpu)).toFixed(2)}`);
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
