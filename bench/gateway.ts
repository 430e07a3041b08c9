/**
 * Gateway fan-out and queries.
 *
 * Fan-out: walnats cdc and walnats gateway as real processes; 1,000 subscribers in a separate
 * process (bench/fanout-clients.ts); the commit load (paced single-row transactions) from this
 * process. The ceiling: bench/raw-broadcast.ts, a bare `ws` server fed by the same cdc through
 * a core NATS subscription, sending the same payload to the same number of sockets.
 *
 * Queries: a filtered list query with one nested (object) relationship through a real
 * `walnats gateway` process, against the SQL the gateway generates for it, run directly
 * through a `pg` pool of the same size, both from a separate load process.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import { freePort } from '../test/harness/ports.ts';
import { createGateway } from '../src/gateway/index.ts';
import { defaultStreamName } from '../src/events/subject.ts';
import {
  QUICK, busyPct, cpuSeconds, cpuTicks, deleteStream, dropDatabase, fmt, log, nowMs, ratioOf, sleep, startWalnats, summary, waitForLog,
  type Env, type Result,
} from './lib.ts';
import { pacedInserts } from './cdc.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

function forkTs(script: string, arg: unknown): ChildProcess {
  const prof = process.env.WALNATS_BENCH_PROF; // load processes are profiled too (see startWalnats)
  const execArgv = ['--import', 'tsx', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])];
  return fork(path.join(here, script), [JSON.stringify(arg)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function nextMessage<T>(child: ChildProcess, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => {
      clearTimeout(t);
      child.off('message', onMessage);
      reject(new Error(`child process exited with ${code}`));
    };
    const onMessage = (m: unknown) => {
      clearTimeout(t);
      child.off('exit', onExit);
      const e = (m as { error?: string }).error;
      if (e) reject(new Error(e));
      else resolve(m as T);
    };
    const t = setTimeout(() => {
      child.off('exit', onExit);
      child.off('message', onMessage);
      reject(new Error('child process did not answer'));
    }, timeoutMs);
    child.once('message', onMessage);
    child.once('exit', onExit);
  });
}

interface FanoutStats {
  received: number;
  first: number;
  last: number;
  latencies: number[];
  errors: string[];
  errorCount: number;
  minPerSocket: number;
  maxPerSocket: number;
}

export async function benchFanout(env: Env): Promise<Result[]> {
  const subscribers = Number(process.env.WALNATS_BENCH_SUBSCRIBERS) || (QUICK ? 200 : 1000); // WALNATS_BENCH_SUBSCRIBERS: for iterating
  const seconds = QUICK ? 3 : 10;
  const out: Result[] = [];
  const db = await env.pg.createDatabase('fan');
  await env.pg.sql(`CREATE TABLE ticks (id bigint PRIMARY KEY, n int NOT NULL, b text NOT NULL, ts timestamptz NOT NULL DEFAULT clock_timestamp())`, [], db);
  const stream = defaultStreamName('walnats', db);
  const cdc = startWalnats(env, db);
  const gwPort = await freePort();
  const gw = startWalnats(env, db, { WALNATS_HTTP_PORT: String(gwPort), WALNATS_LOG_LEVEL: 'warn' }, 'gateway');
  const raw = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'raw-broadcast.ts'), env.nats.url, `walnats.${db}.public.ticks.>`, 'ticks_events'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await waitForLog(cdc, /^streaming changes/);
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${gwPort}/healthz`)).ok) break;
      } catch {
        /* not yet */
      }
      if (i > 600) throw new Error(`gateway did not start:\n${gw.log().slice(-2000)}`);
      await sleep(100);
    }
    const rawPort = await new Promise<number>((resolve, reject) => {
      let buf = '';
      raw.stdout!.on('data', (d) => {
        buf += d;
        const m = /ready (\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      raw.once('exit', (c) => reject(new Error(`raw broadcast server exited with ${c}`)));
    });
    const query = 'subscription { ticks_events(ops: [INSERT]) { op new { id n b ts } } }';
    let nextId = 1;
    const b = 'y'.repeat(64);
    // For iterating on one case: WALNATS_BENCH_FANOUT=gateway:100 (targets:rates); results are only recorded for full pairs.
    const [onlyTargets, onlyRates] = (process.env.WALNATS_BENCH_FANOUT ?? '').split(':');
    const rates = onlyRates ? onlyRates.split(',').map(Number) : [100, 500];
    const targets = (onlyTargets ? onlyTargets.split(',') : ['gateway', 'raw']) as Array<'gateway' | 'raw'>;
    // The cases: each rate beside the raw broadcast, and (full runs) the gateway alone with fewer
    // subscribers at 100 events/s: where the latency curve bends on this machine.
    const cases: Array<{ rate: number; subscribers: number; targets: Array<'gateway' | 'raw'> }> = rates.map((rate) => ({ rate, subscribers, targets }));
    if (!process.env.WALNATS_BENCH_FANOUT && !process.env.WALNATS_BENCH_SUBSCRIBERS) cases.push({ rate: 100, subscribers: Math.round(subscribers * 0.3), targets: ['gateway'] });
    for (const { rate, subscribers, targets } of cases) {
      const got: Record<string, { stats: FanoutStats; events: number; t0: number; busy: number; cpu: { server: number; clients: number; seconds: number } }> = {};
      for (const target of targets) {
        log(`fan-out: ${subscribers} subscribers, ${rate} events/s, ${target}`);
        const clients = forkTs('fanout-clients.ts', {
          url: target === 'gateway' ? `ws://127.0.0.1:${gwPort}/graphql` : `ws://127.0.0.1:${rawPort}`,
          mode: target === 'gateway' ? 'graphql-ws' : 'raw',
          count: subscribers,
          sampleEvery: 10,
          query,
          field: 'ticks_events',
        });
        try {
          await nextMessage(clients, 120_000);
          // Every subscription is live once every socket has received a warm-up event.
          for (let i = 0; ; i++) {
            await env.pg.sql('INSERT INTO ticks (id, n, b) VALUES ($1, 0, $2)', [nextId++, b], db);
            await sleep(200);
            clients.send({ cmd: 'stats' });
            const st = (await nextMessage<{ stats: FanoutStats }>(clients, 30_000)).stats;
            if (st.minPerSocket >= 1) break;
            if (i > 300) throw new Error(`subscriptions did not all start (${st.errorCount} errors: ${st.errors[0]})`);
          }
          await sleep(500);
          clients.send({ cmd: 'reset' });
          await nextMessage(clients, 30_000);
          await sleep(1000);
          const c0 = cpuTicks();
          const serverPid = target === 'gateway' ? gw.pid : raw.pid!;
          const cpu0 = { server: cpuSeconds(serverPid), clients: cpuSeconds(clients.pid!) };
          const t0 = nowMs();
          const first = nextId;
          const load = await pacedInserts(env.pg.url(db), rate, seconds, (c) => c.query('INSERT INTO ticks (id, n, b) VALUES ($1, $2, $3)', [nextId, nextId++, b]), 4);
          // Let deliveries finish: until everything arrived, nothing moved for 10 s (an overloaded server delivers in bursts), or 60 s.
          let prev = -1;
          let still = 0;
          let stats!: FanoutStats;
          const until = nowMs() + 60_000;
          for (;;) {
            clients.send({ cmd: 'stats' });
            stats = (await nextMessage<{ stats: FanoutStats }>(clients, 30_000)).stats;
            if (stats.received >= load.done * subscribers || nowMs() > until) break;
            still = stats.received === prev ? still + 1 : 0;
            if (still >= 20) break;
            prev = stats.received;
            await sleep(500);
          }
          // The samples only at the end: shipping a growing array over IPC twice a second held the subscriber process's event loop.
          clients.send({ cmd: 'stats', latencies: true });
          stats = (await nextMessage<{ stats: FanoutStats }>(clients, 30_000)).stats;
          const cpuSecs = (stats.last - t0) / 1000;
          const cpu = { server: (cpuSeconds(serverPid) - cpu0.server) / cpuSecs, clients: (cpuSeconds(clients.pid!) - cpu0.clients) / cpuSecs, seconds: cpuSecs };
          got[target] = { stats, events: nextId - first, t0, busy: busyPct(c0, cpuTicks()), cpu };
          if (stats.received < load.done * subscribers) {
            // Deliveries stopped short: say where the events stopped, so a stall can be told from a slow run.
            const info = await (await jetstreamManager(env.nc)).streams.info(stream);
            log(`  deliveries stopped short: stream ${stream} holds ${info.state.messages} messages (last seq ${info.state.last_seq}); ${nextId - 1} rows committed`);
            log(`  cdc log tail:\n${cdc.log().split('\n').slice(-8).join('\n')}`);
            log(`  gateway log tail:\n${gw.log().split('\n').slice(-8).join('\n')}`);
            const gm = await (await fetch(`http://127.0.0.1:${gwPort}/metrics`)).text().catch(() => '');
            log(`  gateway metrics: ${gm.split('\n').filter((l) => /^walnats_gateway_(subscriptions|deliveries_total|requests_total)/.test(l)).join('; ')}`);
            log(`  clients: ${stats.errorCount} errors${stats.errors[0] ? `, e.g. ${stats.errors[0]}` : ''}; per socket ${stats.minPerSocket}–${stats.maxPerSocket} events`);
          }
          if (stats.errorCount) log(`  ${stats.errorCount} client errors, e.g. ${stats.errors[0]}`);
          const l = summary(stats.latencies);
          log(`  delivered ${fmt(stats.received, 0)} of ${fmt(load.done * subscribers, 0)} in ${fmt((stats.last - t0) / 1000)} s; commit→client p50 ${fmt(l.p50)} p99 ${fmt(l.p99)} ms`);
        } finally {
          clients.send({ cmd: 'close' });
          await new Promise((r) => clients.once('exit', r));
        }
        await sleep(500);
      }
      const rateOf = (x: { stats: FanoutStats; t0: number }) => x.stats.received / ((x.stats.last - x.t0) / 1000);
      const g = got.gateway;
      const r = got.raw;
      const cores = (x: { cpu: { server: number; clients: number } }, who: string) => `${who} ${fmt(x.cpu.server)} core, subscriber process ${fmt(x.cpu.clients)} core`;
      if (g && !r && targets.length === 1) {
        const gl = summary(g.stats.latencies);
        out.push({
          area: 'Gateway fan-out',
          name: `${fmt(subscribers, 0)} subscribers × ${rate} events/s: commit → client (p50 / p99)`,
          value: gl.p99,
          unit: 'ms p99',
          detail: `gateway p50 ${fmt(gl.p50)} · p99 ${fmt(gl.p99)} · max ${fmt(gl.max)} ms (${fmt(gl.n, 0)} samples from every 10th socket); delivered ${fmt((g.stats.received / (g.events * subscribers)) * 100, 1)} %; ${cores(g, 'gateway')}; machine CPU busy ${fmt(g.busy, 0)} %`,
        });
        continue;
      }
      if (!g || !r) continue;
      const gl = summary(g.stats.latencies);
      const rl = summary(r.stats.latencies);
      const ratio = ratioOf(rateOf(g), rateOf(r));
      out.push({
        area: 'Gateway fan-out',
        name: `${fmt(subscribers, 0)} graphql-ws subscribers × ${rate} events/s: deliveries/s`,
        value: rateOf(g),
        unit: 'deliveries/s',
        ceiling: { name: 'raw ws broadcast', value: rateOf(r) },
        ratio,
        target: { text: '≥ 0.5 × raw broadcast', pass: ratio >= 0.5 },
        detail: `delivered ${fmt((g.stats.received / (g.events * subscribers)) * 100, 1)} % of ${fmt(g.events * subscribers, 0)} (raw ${fmt((r.stats.received / (r.events * subscribers)) * 100, 1)} %); machine CPU busy ${fmt(g.busy, 0)} % (raw ${fmt(r.busy, 0)} %)${g.stats.errorCount ? `; ${g.stats.errorCount} client errors` : ''}`,
      });
      out.push({
        area: 'Gateway fan-out',
        name: `${fmt(subscribers, 0)} subscribers × ${rate} events/s: commit → client (p50 / p99)`,
        value: gl.p99,
        unit: 'ms p99',
        ceiling: { name: 'raw ws broadcast p99', value: rl.p99 },
        target: rate === 100 ? { text: 'p99 < 50 ms', pass: gl.p99 < 50 } : undefined,
        detail: `gateway p50 ${fmt(gl.p50)} · p99 ${fmt(gl.p99)} · max ${fmt(gl.max)} ms; raw broadcast p50 ${fmt(rl.p50)} · p99 ${fmt(rl.p99)} ms (${fmt(gl.n, 0)} samples from every 10th socket); ${cores(g, 'gateway')} (raw: ${cores(r, 'server')}); machine CPU busy ${fmt(g.busy, 0)} %`,
      });
    }
  } finally {
    raw.kill('SIGTERM');
    await gw.kill('SIGTERM');
    await cdc.kill('SIGTERM');
  }
  await deleteStream(env.nc, stream);
  await dropDatabase(env.pg, db);
  return out;
}

const QUERY = 'query Q($c: Int!) { orders(where: {customer_id: {_eq: $c}, qty: {_gt: 10}}, order_by: {id: desc}, limit: 20) { id qty price note customer { id name email } } }';

/** The SQL (text and parameters) the gateway runs for QUERY, captured from an in-process gateway. */
async function captureSql(env: Env, db: string, stream: string): Promise<{ text: string; params: unknown[]; index: number }> {
  const seen: Array<{ text: string; params: unknown[] }> = [];
  const orig = pg.Pool.prototype.query;
  (pg.Pool.prototype as unknown as { query: (...a: unknown[]) => unknown }).query = function (this: pg.Pool, ...a: unknown[]) {
    if (typeof a[0] === 'string' && Array.isArray(a[1])) seen.push({ text: a[0], params: a[1] as unknown[] });
    return (orig as unknown as (...x: unknown[]) => unknown).apply(this, a);
  };
  const gw = await createGateway({
    pgUrl: env.pg.url(db), nc: env.nc, stream, subjectPrefix: 'walnats', database: db, schemas: ['public'],
    maxDepth: 10, maxRows: 1000, statementTimeoutMs: 10_000, introspection: true, production: false,
    logger: pino({ level: 'silent' }), catalogPollMs: 0,
  });
  const server = http.createServer((req, res) => gw.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    seen.length = 0;
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: QUERY, variables: { c: 777 } }),
    });
    const body = await r.text();
    if (!r.ok || body.includes('"errors"')) throw new Error(`gateway query failed: ${body.slice(0, 500)}`);
  } finally {
    pg.Pool.prototype.query = orig;
    await gw.close();
    server.closeAllConnections?.();
    await new Promise<void>((r) => server.close(() => r()));
  }
  const q = seen.find((s) => /orders/.test(s.text) && s.params.some((p) => p === 777 || p === '777'));
  if (!q || seen.length !== 1) throw new Error(`expected one statement for the query, saw ${seen.length}`);
  return { text: q.text, params: q.params, index: q.params.findIndex((p) => p === 777 || p === '777') };
}

export async function benchQueries(env: Env): Promise<Result[]> {
  const seconds = QUICK ? 3 : 10;
  const customers = 1000;
  const db = await env.pg.createDatabase('q');
  await env.pg.sql(`
    CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text);
    CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), qty int NOT NULL, price numeric(12,2), note text);
    CREATE INDEX ON orders (customer_id);
    INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, ${customers}) g;
    INSERT INTO orders (customer_id, qty, price, note) SELECT 1 + g % ${customers}, g % 50, (g % 1000) / 10.0, md5(g::text) FROM generate_series(1, 200000) g;
    ANALYZE;`, [], db);
  const stream = defaultStreamName('walnats', db);
  const sql = await captureSql(env, db, stream);
  log(`queries: gateway SQL captured (${sql.text.length} chars, ${sql.params.length} params)`);
  const port = await freePort();
  const gw = startWalnats(env, db, { WALNATS_HTTP_PORT: String(port), WALNATS_LOG_LEVEL: 'warn' }, 'gateway');
  const out: Result[] = [];
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
      } catch {
        /* not yet */
      }
      if (i > 600) throw new Error(`gateway did not start:\n${gw.log().slice(-2000)}`);
      await sleep(100);
    }
    const common = { seconds, warmupSeconds: QUICK ? 1 : 2, concurrency: 16, customers };
    const run = async (arg: Record<string, unknown>) => {
      const c0 = cpuTicks();
      const child = forkTs('query-client.ts', { ...common, ...arg });
      const r = await nextMessage<{ done: number; seconds: number; lat: number[] }>(child, (seconds + 60) * 1000);
      await new Promise((res) => child.once('exit', res));
      return { rps: r.done / r.seconds, ...summary(r.lat), busy: busyPct(c0, cpuTicks()) };
    };
    log('queries: through the gateway');
    const g = await run({ mode: 'gateway', url: `http://127.0.0.1:${port}/graphql`, query: QUERY });
    log(`  ${fmt(g.rps, 0)} req/s, p50 ${fmt(g.p50)} p99 ${fmt(g.p99)} ms`);
    log('queries: the same SQL through pg');
    const p = await run({ mode: 'pg', pgUrl: env.pg.url(db), poolSize: 10, sql: sql.text, params: sql.params, paramIndex: sql.index });
    log(`  ${fmt(p.rps, 0)} req/s, p50 ${fmt(p.p50)} p99 ${fmt(p.p99)} ms`);
    const ratio = ratioOf(g.rps, p.rps);
    out.push({
      area: 'Gateway queries',
      name: 'filtered list + nested object relationship: requests/s',
      value: g.rps,
      unit: 'req/s',
      ceiling: { name: 'same SQL through pg', value: p.rps },
      ratio,
      target: { text: '≥ 0.7 × direct SQL', pass: ratio >= 0.7 },
      detail: `gateway p50 ${fmt(g.p50)} · p99 ${fmt(g.p99)} ms; direct SQL p50 ${fmt(p.p50)} · p99 ${fmt(p.p99)} ms; 16 concurrent requests, pool of 10 both ways; machine CPU busy ${fmt(g.busy, 0)} % vs ${fmt(p.busy, 0)} %`,
    });
    out.push({
      area: 'Gateway queries',
      name: 'filtered list + nested object relationship: latency p99',
      value: g.p99,
      unit: 'ms p99',
      ceiling: { name: 'same SQL through pg, p99', value: p.p99 },
      detail: `p50 ${fmt(g.p50)} ms vs ${fmt(p.p50)} ms`,
    });
  } finally {
    await gw.kill('SIGTERM');
  }
  await dropDatabase(env.pg, db);
  return out;
}
