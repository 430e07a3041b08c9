/**
 * CDC throughput and latency.
 *
 * Throughput: a backlog is written to the slot first (two slots created at the same LSN before
 * the load), then drained three ways, one after the other on the same machine:
 *   - walnats cdc (a real process) into JetStream: from its "streaming changes" log line to the
 *     store time of the last event in the stream (nats-server's clock = the ack's moment);
 *   - pg_recvlogical on the second slot to /dev/null, with --endpos (the walsender's ceiling);
 *   - a raw pipelined JetStream publish from Node of as many messages of the same subject,
 *     headers and size (the broker's ceiling).
 * Latency: a paced load of single-row transactions (synchronous_commit=on) while walnats cdc
 * streams; per event, store time in JetStream − the row's clock_timestamp() (taken inside the
 * transaction just before COMMIT: it slightly overstates the latency).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { createInbox, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, DeliverPolicy } from '@nats-io/jetstream';
import pg from 'pg';
import {
  QUICK, busyPct, cpuSeconds, cpuTicks, deleteStream, dropDatabase, fmt, log, nowMs, parseTimestampMs, ratioOf, sleep, startWalnats,
  summary, trackProcessCpu, waitForLog, waitForStream, waitWalFlushed, type Env, type Result,
} from './lib.ts';
import { defaultStreamName } from '../src/events/subject.ts';

/** A walsender's process title (`postgres: walsender <user> <client> …`). */
const WALSENDER = /^postgres: walsender /;
const CORES = os.cpus().length;

const ROW_SQL_100 = `md5(g::text) || md5((g + 1)::text)`; // 64 chars: ~100-byte rows
const ROW_SQL_2K = `left(repeat(md5(g::text), 60), 1900)`; // ~2 KB rows, under the TOAST threshold

interface Workload {
  key: string;
  label: string;
  rows: number;
  perTxn: number;
  bSql: string;
  rowBytes: number;
}

export function workloads(): Workload[] {
  const n = QUICK ? 20_000 : 200_000;
  const n2k = QUICK ? 5_000 : 50_000;
  return [
    { key: 'one-txn', label: `${fmt(n, 0)} rows × ~100 B, one transaction`, rows: n, perTxn: n, bSql: ROW_SQL_100, rowBytes: 100 },
    { key: 'small-txns', label: `${fmt(n, 0)} rows × ~100 B, ${fmt(n / 10, 0)} transactions of 10`, rows: n, perTxn: 10, bSql: ROW_SQL_100, rowBytes: 100 },
    { key: '2k-rows', label: `${fmt(n2k, 0)} rows × ~2 KB, ${fmt(n2k / 10, 0)} transactions of 10`, rows: n2k, perTxn: 10, bSql: ROW_SQL_2K, rowBytes: 2000 },
  ];
}

export const TABLE_DDL = `CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, ts timestamptz NOT NULL DEFAULT clock_timestamp())`;

/** Loads `rows` rows in transactions of `perTxn` (a procedure committing in a loop). */
export async function loadRows(env: Env, db: string, rows: number, perTxn: number, bSql: string): Promise<void> {
  await env.pg.sql(`CREATE OR REPLACE PROCEDURE bench_load(n int, per int) LANGUAGE plpgsql AS $$
    DECLARE i int := 0;
    BEGIN
      WHILE i < n LOOP
        INSERT INTO t (id, a, b) SELECT g, g, ${bSql} FROM generate_series(i + 1, least(i + per, n)) g;
        COMMIT;
        i := i + per;
      END LOOP;
    END $$`, [], db);
  await env.pg.sql(`CALL bench_load($1, $2)`, [rows, perTxn], db);
}

async function prepareDb(env: Env, prefix: string, slots: string[]): Promise<string> {
  const db = await env.pg.createDatabase(prefix);
  await env.pg.sql(TABLE_DDL, [], db);
  await env.pg.sql(`CREATE PUBLICATION walnats FOR ALL TABLES`, [], db);
  for (const s of slots) await env.pg.sql(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [s], db);
  return db;
}

function runRecvlogical(env: Env, db: string, slot: string, endLsn: string): Promise<{ ms: number; code: number | null; err: string }> {
  return new Promise((resolve) => {
    const t0 = nowMs();
    const child = spawn('/usr/bin/pg_recvlogical', [
      '-h', '127.0.0.1', '-p', String(env.pg.port), '-U', 'postgres', '-d', db,
      '--slot', slot, '--start', '--endpos', endLsn, '--no-loop',
      '-o', 'proto_version=3', '-o', 'publication_names=walnats', '--plugin=pgoutput',
      '-F', '0', '-s', '1', '-f', '/dev/null',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('exit', (code) => resolve({ ms: nowMs() - t0, code, err }));
  });
}

export interface SampleMessage {
  subject: string;
  headers: Array<[string, string]>;
  data: Uint8Array;
}

async function sampleMessage(nc: NatsConnection, stream: string, seq: number): Promise<SampleMessage> {
  const jsm = await jetstreamManager(nc);
  const m = await jsm.streams.getMessage(stream, { seq });
  if (!m) throw new Error(`no message ${seq} in ${stream}`);
  const headers: Array<[string, string]> = [];
  if (m.header) for (const [k, v] of m.header) headers.push([k, v[0]]);
  return { subject: m.subject, headers, data: m.data };
}

/**
 * The broker's ceiling: `n` messages like `sample` published by Node into a fresh stream like
 * walnats's, the way walnats publishes (so that it stays a ceiling): the header block written
 * as bytes (no `MsgHdrs`), `Nats-Expected-Last-Sequence` on each, pipelined with the same
 * window, and an ack asked for by every 128th message and the last (sparse acks; the chain of
 * expected sequences and msg ids makes an ack cover all before it). No decoding, no JSON, no envelope.
 */
export async function rawPublishCeiling(nc: NatsConnection, sample: SampleMessage, n: number, window = 4096): Promise<{ ms: number; rate: number }> {
  const jsm = await jetstreamManager(nc);
  const tag = `raw${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  const stream = `BENCH_${tag}`;
  await jsm.streams.add({ name: stream, subjects: [`${tag}.>`], duplicate_window: 120_000 * 1_000_000 });
  const subject = `${tag}.${sample.subject.split('.').slice(1).join('.')}`;
  const inbox = createInbox();
  const ackEvery = Math.min(128, Math.floor(window / 8));
  let acked = 0;
  let sent = 0;
  let tEnd = 0;
  let wake: (() => void) | undefined;
  let done!: () => void;
  let failed: Error | undefined;
  const finished = new Promise<void>((r) => (done = r));
  const low = Math.floor((window * 3) / 4);
  const sub = nc.subscribe(`${inbox}.*`, {
    callback: (_e, m) => {
      const s = new TextDecoder().decode(m.data);
      if (s.includes('"error"')) {
        failed = new Error(`raw publish refused: ${s}`);
        wake?.();
        done();
        return;
      }
      acked = Number(m.subject.slice(inbox.length + 1)) + 1;
      if (wake && sent - acked <= low) {
        const w = wake;
        wake = undefined;
        w();
      }
      if (acked === n) {
        tEnd = nowMs();
        done();
      }
    },
  });
  const rest = sample.headers.filter(([k]) => !['Nats-Msg-Id', 'Nats-Expected-Last-Sequence', 'Nats-Expected-Stream', 'Nats-Expected-Last-Msg-Id'].includes(k));
  const fixed = rest.map(([k, v]) => `\r\n${k}: ${v}`).join('') + `\r\nNats-Expected-Stream: ${stream}`;
  const t0 = nowMs();
  while (sent < n && !failed) {
    while (sent < n && sent - acked < window) {
      const chain = sent > 0 ? `\r\nNats-Expected-Last-Msg-Id: ${tag}:${sent - 1}` : '';
      const text = `NATS/1.0\r\nNats-Msg-Id: ${tag}:${sent}${fixed}\r\nNats-Expected-Last-Sequence: ${sent}${chain}\r\n\r\n`;
      const headers = { encode: () => Buffer.from(text, 'utf8') } as unknown as ReturnType<typeof natsHeaders>;
      const ask = sent === 0 || sent === n - 1 || sent % ackEvery === ackEvery - 1 || sent + 1 - acked >= window;
      nc.publish(subject, sample.data, ask ? { reply: `${inbox}.${sent}`, headers } : { headers });
      sent++;
    }
    if (sent < n) await new Promise<void>((r) => (wake = r));
  }
  await finished;
  sub.unsubscribe();
  if (failed) throw failed;
  const ms = tEnd - t0;
  await deleteStream(nc, stream);
  return { ms, rate: (n / ms) * 1000 };
}

export async function benchThroughput(env: Env): Promise<Result[]> {
  const out: Result[] = [];
  const pick = process.env.WALNATS_BENCH_WORKLOAD?.split(',');
  for (const w of workloads().filter((x) => !pick || pick.includes(x.key))) {
    log(`throughput: ${w.label}`);
    const db = await prepareDb(env, `tp_${w.key.replace(/-/g, '_')}`, ['wn', 'rl']);
    const tl = nowMs();
    await loadRows(env, db, w.rows, w.perTxn, w.bSql);
    const endLsn = await waitWalFlushed(env.pg, db);
    log(`  loaded in ${fmt((nowMs() - tl) / 1000)} s, end ${endLsn}`);

    // pg_recvlogical first: the ceiling of the walsender decoding this slot data.
    const c0 = cpuTicks();
    const rlSender = trackProcessCpu(WALSENDER);
    const rl = await runRecvlogical(env, db, 'rl', endLsn);
    const rlSenderCpu = rlSender.stop();
    const rlBusy = busyPct(c0, cpuTicks());
    if (rl.code !== 0) throw new Error(`pg_recvlogical exited with ${rl.code}: ${rl.err}`);
    const rlRate = (w.rows / rl.ms) * 1000;
    log(`  pg_recvlogical: ${fmt(rl.ms)} ms, ${fmt(rlRate, 0)} rows/s`);

    // walnats cdc, a real process.
    const stream = defaultStreamName('walnats', db);
    const d = startWalnats(env, db, { WALNATS_SLOT: 'wn', WALNATS_CREATE_SLOT: 'false' });
    let wn: { ms: number; rate: number; cpu: number; senderCpu: number; natsCpu: number; events: number };
    let sample: SampleMessage;
    let wnBusy = NaN;
    try {
      const tStart = await waitForLog(d, /^streaming changes/);
      const cpu0 = cpuSeconds(d.pid);
      const nats0 = cpuSeconds(env.nats.pid ?? -1);
      const sender = trackProcessCpu(WALSENDER);
      const c1 = cpuTicks();
      const st = await waitForStream(env.nc, stream, w.rows, 600_000);
      wnBusy = busyPct(c1, cpuTicks());
      const ms = st.lastTs - tStart;
      wn = {
        ms,
        rate: (w.rows / ms) * 1000,
        cpu: cpuSeconds(d.pid) - cpu0,
        senderCpu: sender.stop(),
        natsCpu: cpuSeconds(env.nats.pid ?? -1) - nats0,
        events: st.messages,
      };
      sample = await sampleMessage(env.nc, stream, st.lastSeq);
    } finally {
      await d.kill('SIGTERM');
    }
    log(`  walnats: ${fmt(wn.ms)} ms, ${fmt(wn.rate, 0)} events/s, daemon CPU ${fmt(wn.cpu)} s`);
    await deleteStream(env.nc, stream);

    const c2 = cpuTicks();
    const rawNats0 = cpuSeconds(env.nats.pid ?? -1);
    const rawSelf0 = process.cpuUsage();
    const raw = await rawPublishCeiling(env.nc, sample, w.rows);
    const rawSelf = process.cpuUsage(rawSelf0);
    const rawNatsCpu = cpuSeconds(env.nats.pid ?? -1) - rawNats0;
    const rawBusy = busyPct(c2, cpuTicks());
    log(`  raw JetStream publish: ${fmt(raw.ms)} ms, ${fmt(raw.rate, 0)} msg/s (${sample.data.length} B bodies)`);
    await dropDatabase(env.pg, db);

    // What bounds the figure: every process of the walnats run shares the machine's cores.
    // µs of CPU per event for each, the floor that sum puts under the run's time on this
    // machine, and what the daemon's share would have to be for 0.8 × pg_recvlogical.
    const us = (cpuS: number) => (cpuS / w.rows) * 1e6;
    const perEvent = { daemon: us(wn.cpu), sender: us(wn.senderCpu), nats: us(wn.natsCpu) };
    const totalUs = perEvent.daemon + perEvent.sender + perEvent.nats;
    const floorMs = ((totalUs * w.rows) / 1e6 / CORES) * 1000;
    const floorRate = (w.rows / floorMs) * 1000;
    const targetUs = (CORES * 1e6) / (0.8 * rlRate);
    const daemonBudgetUs = targetUs - perEvent.sender - perEvent.nats;
    log(
      `  CPU per event: daemon ${fmt(perEvent.daemon)} µs, walsender ${fmt(perEvent.sender)} µs, nats-server ${fmt(perEvent.nats)} µs ` +
        `(pg_recvlogical run: walsender ${fmt(us(rlSenderCpu))} µs; raw publish: publisher ${fmt(us((rawSelf.user + rawSelf.system) / 1e6))} µs, nats-server ${fmt(us(rawNatsCpu))} µs)`,
    );

    const ratio = ratioOf(wn.rate, rlRate);
    out.push({
      area: 'CDC throughput',
      name: `${w.label}: walnats vs pg_recvlogical`,
      value: wn.rate,
      unit: 'rows/s',
      ceiling: { name: 'pg_recvlogical → /dev/null', value: rlRate },
      ratio,
      target: { text: '≥ 0.8 × pg_recvlogical', pass: ratio >= 0.8 },
      detail: `${fmt(wn.ms / 1000)} s vs ${fmt(rl.ms / 1000)} s; daemon CPU ${fmt(wn.cpu)} s (${fmt((wn.cpu / (wn.ms / 1000)) * 100, 0)} % of a core); machine CPU busy ${fmt(wnBusy, 0)} % vs ${fmt(rlBusy, 0)} %; event body ${sample.data.length} B`,
    });
    out.push({
      area: 'CDC throughput',
      name: `${w.label}: walnats vs raw JetStream publish`,
      value: wn.rate,
      unit: 'events/s',
      ceiling: { name: 'raw pipelined publish from Node', value: raw.rate },
      ratio: ratioOf(wn.rate, raw.rate),
      detail: `raw publish ${fmt(raw.ms / 1000)} s for ${fmt(w.rows, 0)} × ${sample.data.length} B (published as walnats does: header bytes, sparse acks); CPU per message: publisher ${fmt(us((rawSelf.user + rawSelf.system) / 1e6))} µs, nats-server ${fmt(us(rawNatsCpu))} µs; machine CPU busy ${fmt(rawBusy, 0)} % (walnats run: ${fmt(wnBusy, 0)} %)`,
    });
    out.push({
      area: 'CDC throughput',
      name: `${w.label}: walnats vs the run's CPU floor on ${CORES} cores`,
      value: wn.rate,
      unit: 'events/s',
      ceiling: { name: `all its processes' CPU ÷ ${CORES} cores`, value: floorRate },
      ratio: ratioOf(wn.rate, floorRate),
      detail:
        `CPU per event: daemon ${fmt(perEvent.daemon)} µs + walsender ${fmt(perEvent.sender)} µs + nats-server ${fmt(perEvent.nats)} µs = ${fmt(totalUs)} µs, ` +
        `so ≥ ${fmt(floorMs / 1000)} s on ${CORES} cores (the run took ${fmt(wn.ms / 1000)} s); pg_recvlogical's walsender: ${fmt(us(rlSenderCpu))} µs per row. ` +
        `0.8 × pg_recvlogical needs ≤ ${fmt(targetUs)} µs per event in all: ${daemonBudgetUs > 0 ? `the daemon at ≤ ${fmt(daemonBudgetUs)} µs` : 'less than the walsender and nats-server use already, whatever the daemon does'} (it uses ${fmt(perEvent.daemon)} µs)`,
    });
  }
  return out;
}

/** Paced single-row transactions from a small pool, synchronous_commit=on. */
export async function pacedInserts(url: string, tps: number, seconds: number, insert: (c: pg.Client, i: number) => Promise<unknown>, conns = 8): Promise<{ done: number; seconds: number; behind: number }> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < conns; i++) {
    const c = new pg.Client({ connectionString: url, options: '-c synchronous_commit=on' });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
  }
  const free = [...clients];
  let issued = 0;
  let done = 0;
  let maxBehind = 0;
  const total = Math.round(tps * seconds);
  const t0 = nowMs();
  await new Promise<void>((resolve, reject) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((nowMs() - t0) / 1000) * tps) + 1);
      while (issued < due && free.length) {
        const c = free.pop()!;
        const i = issued++;
        insert(c, i).then(() => {
          done++;
          free.push(c);
          if (done === total) resolve();
        }, reject);
      }
      maxBehind = Math.max(maxBehind, due - issued);
      if (issued < total) setTimeout(tick, 1);
    };
    tick();
  });
  const elapsed = (nowMs() - t0) / 1000;
  await Promise.all(clients.map((c) => c.end()));
  return { done, seconds: elapsed, behind: maxBehind };
}

/** Upper bucket bound of quantile q of a histogram on the daemon's /metrics (seconds), or null. */
async function histogramQuantile(d: { log(): string }, name: string, q: number): Promise<number | null> {
  const port = /listening on :(\d+)/.exec(d.log())?.[1];
  if (!port) return null;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => ({ le: Number(m[1]), n: Number(m[2]) }));
  const total = buckets.at(-1)?.n ?? 0;
  if (!total) return null;
  return buckets.find((b) => b.n >= q * total)?.le ?? null;
}

export async function benchLatency(env: Env): Promise<Result[]> {
  const out: Result[] = [];
  const seconds = QUICK ? 4 : 15;
  for (const tps of [500, 2000]) {
    log(`latency: ${tps} transactions/s for ${seconds} s`);
    const db = await env.pg.createDatabase(`lat${tps}`);
    await env.pg.sql(`CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b text NOT NULL, ts timestamptz NOT NULL DEFAULT clock_timestamp())`, [], db);
    const stream = defaultStreamName('walnats', db);
    const d = startWalnats(env, db);
    let load;
    let publishP99: number | null = null;
    try {
      await waitForLog(d, /^streaming changes/);
      await sleep(500);
      const b = 'x'.repeat(64);
      load = await pacedInserts(env.pg.url(db), tps, seconds, (c, i) => c.query('INSERT INTO t (id, a, b) VALUES ($1, $2, $3)', [i + 1, i + 1, b]));
      await waitForStream(env.nc, stream, load.done, 120_000);
      publishP99 = await histogramQuantile(d, 'walnats_publish_latency_seconds', 0.99);
    } finally {
      await d.kill('SIGTERM');
    }
    // Every event: JetStream store time − the row's timestamp.
    const js = jetstream(env.nc);
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    const lat: number[] = [];
    const latTs: number[] = [];
    const iter = await consumer.consume({ max_messages: 2000 });
    for await (const m of iter) {
      if (!m.subject.includes('.public.t.')) continue;
      const body = m.json<{ after: { ts: string }; source: { ts_ms: number } }>();
      const stored = m.info.timestampNanos / 1e6;
      lat.push(stored - parseTimestampMs(body.after.ts));
      latTs.push(stored - body.source.ts_ms);
      if (lat.length >= load.done) break;
    }
    await iter.close();
    // Leave out the first second (connections warming up, JIT).
    const warm = Math.min(tps, Math.floor(lat.length / 4));
    const s = summary(lat.slice(warm));
    const sTs = summary(latTs.slice(warm));
    log(`  achieved ${fmt(load.done / load.seconds, 0)} tps; commit→ack p50 ${fmt(s.p50)} p95 ${fmt(s.p95)} p99 ${fmt(s.p99)} max ${fmt(s.max)} ms (source.ts_ms: p99 ${fmt(sTs.p99)})`);
    await deleteStream(env.nc, stream);
    await dropDatabase(env.pg, db);
    out.push({
      area: 'CDC latency',
      name: `commit → JetStream ack at ${fmt(tps, 0)} tx/s (p50 / p95 / p99)`,
      value: s.p99,
      unit: 'ms p99',
      target: tps === 2000 ? { text: 'p99 < 15 ms', pass: s.p99 < 15 } : undefined,
      detail: `p50 ${fmt(s.p50)} · p95 ${fmt(s.p95)} · p99 ${fmt(s.p99)} · max ${fmt(s.max)} ms over ${fmt(s.n, 0)} events; achieved ${fmt(load.done / load.seconds, 0)} tx/s; from source.ts_ms (ms resolution): p50 ${fmt(sTs.p50)} · p99 ${fmt(sTs.p99)} ms; of which the daemon's own publish → ack p99 ≤ ${publishP99 === null ? '?' : fmt(publishP99 * 1000)} ms (its histogram's bucket bound; the rest is Postgres commit → walsender → daemon)`,
    });
  }
  return out;
}
