/**
 * `npm run bench`: walnats against the ceilings of the parts it sits between, measured in the
 * same run on the same machine. Writes BENCHMARKS.md, bench/chart.svg and bench/results.json.
 *
 *   WALNATS_BENCH_QUICK=1   smaller sizes, for a smoke run
 *   WALNATS_BENCH_ONLY=cdc,latency,memory,fanout,queries,snapshot   run some areas only
 *                           (no files are written then, unless WALNATS_BENCH_WRITE=1, or
 *                           WALNATS_BENCH_MERGE=1: replace those areas in bench/results.json;
 *                           WALNATS_BENCH_ONLY=none WALNATS_BENCH_MERGE=1 re-renders the files;
 *                           WALNATS_BENCH_MERGE_NOTE says why the areas were re-run)
 *   WALNATS_BENCH_PROF=<dir>  V8 CPU profiles of the walnats and load processes
 * For iterating on the fan-out (nothing recorded unless both targets ran):
 *   WALNATS_BENCH_FANOUT=gateway,raw:100,500   targets:rates
 *   WALNATS_BENCH_SUBSCRIBERS=<n>              instead of 1,000
 *   WALNATS_BENCH_FANOUT_DUMP=<file>           one line per sampled delivery: socket event-id time latency
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { startPostgres } from '../test/harness/postgres.ts';
import { startNats } from '../test/harness/nats.ts';
import { QUICK, log, type Env, type Result } from './lib.ts';
import { benchLatency, benchThroughput } from './cdc.ts';
import { benchMemory } from './memory.ts';
import { benchFanout, benchQueries } from './gateway.ts';
import { renderChart } from './chart.ts';
import { renderReport } from './report.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const only = process.env.WALNATS_BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const want = (area: string) => !only || only.includes(area);

async function snapshotResults(env: Env): Promise<{ results: Result[]; raw?: unknown; error?: string } | undefined> {
  // bench/snapshot.ts belongs to another area; call it when it is there.
  const spec = './snapshot.ts';
  if (!fs.existsSync(path.join(here, 'snapshot.ts'))) return undefined;
  try {
    const mod = (await import(spec)) as { benchSnapshot?: (env?: Env) => Promise<unknown> };
    if (typeof mod.benchSnapshot !== 'function') return undefined;
    const raw = await mod.benchSnapshot(env);
    const results = Array.isArray(raw) ? (raw as Result[]).filter((r) => r && typeof r.value === 'number' && typeof r.name === 'string') : [];
    return { results, raw: results.length ? undefined : raw };
  } catch (err) {
    return { results: [], error: (err as Error).stack ?? String(err) };
  }
}

async function main() {
  const started = Date.now();
  const loadAtStart = os.loadavg()[0];
  log(`walnats bench${QUICK ? ' (quick)' : ''} on ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GB`);
  const [pg, nats] = await Promise.all([
    startPostgres({ settings: { ...(process.env.WALNATS_BENCH_PGLOG ? { logging_collector: 'on', log_directory: process.env.WALNATS_BENCH_PGLOG } : {}), max_wal_size: '4GB', checkpoint_timeout: '30min', wal_sender_timeout: '60s' } }),
    startNats(),
  ]);
  const nc = await connect({ servers: nats.url });
  const env: Env = { pg, nats, nc };
  const results: Result[] = [];
  const notes: string[] = [];
  let snapshotRaw: unknown;
  try {
    if (want('cdc')) results.push(...(await benchThroughput(env)));
    if (want('latency')) results.push(...(await benchLatency(env)));
    if (want('memory')) results.push(...(await benchMemory(env)));
    if (want('fanout')) results.push(...(await benchFanout(env)));
    if (want('queries')) results.push(...(await benchQueries(env)));
    if (want('snapshot')) {
      const snap = await snapshotResults(env);
      if (snap) {
        results.push(...snap.results.map((r) => ({ ...r, area: r.area ?? 'Snapshot' })));
        snapshotRaw = snap.raw;
        if (snap.error) notes.push(`bench/snapshot.ts failed: ${snap.error.split('\n')[0]}`);
      }
    }
  } finally {
    await nc.close().catch(() => {});
    await Promise.all([pg.destroy(), nats.destroy()]);
  }
  const meta = {
    date: new Date().toISOString(),
    quick: QUICK,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    minutes: (Date.now() - started) / 60_000,
    loadAtStart,
    notes,
    snapshotRaw,
  };
  for (const r of results) {
    log(`${r.area} | ${r.name}: ${r.value.toFixed(2)} ${r.unit}${r.ratio !== undefined ? ` (× ${r.ratio.toFixed(2)} of ${r.ceiling?.name})` : ''}${r.target ? ` target ${r.target.text}: ${r.target.pass ? 'met' : 'MISSED'}` : ''}`);
  }
  if (only && process.env.WALNATS_BENCH_MERGE === '1') {
    // Re-run of some areas: replace those areas in the last full run's results, and say so.
    const prev = JSON.parse(fs.readFileSync(path.join(here, 'results.json'), 'utf8')) as { meta: typeof meta; results: Result[] };
    const areas = new Set(results.map((r) => r.area));
    const merged = [...prev.results.filter((r) => !areas.has(r.area)), ...results];
    const order = [...new Set([...prev.results, ...results].map((r) => r.area))];
    merged.sort((a, b) => order.indexOf(a.area) - order.indexOf(b.area));
    const why = process.env.WALNATS_BENCH_MERGE_NOTE ?? 'after a fix in the bench itself';
    if (areas.size) prev.meta.notes = [...(prev.meta.notes ?? []), `${[...areas].join(', ')}: re-run at ${meta.date.slice(0, 16).replace('T', ' ')} UTC (${meta.minutes.toFixed(1)} min) ${why}; figures from that run.`];
    results.splice(0, results.length, ...merged);
    Object.assign(meta, { ...prev.meta, notes: prev.meta.notes });
  }
  if (!only || process.env.WALNATS_BENCH_WRITE === '1' || process.env.WALNATS_BENCH_MERGE === '1') {
    fs.writeFileSync(path.join(here, 'results.json'), JSON.stringify({ meta, results }, null, 2) + '\n');
    fs.writeFileSync(path.join(here, 'chart.svg'), renderChart(results, meta));
    fs.writeFileSync(path.join(root, 'BENCHMARKS.md'), renderReport(results, meta, fs.readFileSync(path.join(here, 'notes.md'), 'utf8')));
    log('wrote BENCHMARKS.md, bench/chart.svg, bench/results.json');
  }
  log(`done in ${meta.minutes.toFixed(1)} min`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
