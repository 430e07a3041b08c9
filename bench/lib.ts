/**
 * Shared pieces of `npm run bench`: sizes (full or WALNATS_BENCH_QUICK=1), result records,
 * percentiles, timestamps, servers, and a `walnats` process driven through its environment.
 */
import fs from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { spawnDaemon, type DaemonProcess } from '../test/harness/daemon-process.ts';
import type { PgServer } from '../test/harness/postgres.ts';
import type { NatsServer } from '../test/harness/nats.ts';

export const QUICK = process.env.WALNATS_BENCH_QUICK === '1';

/** One measured figure, with the ceiling it is compared to (measured in the same run). */
export interface Result {
  area: string;
  name: string;
  value: number;
  unit: string;
  ceiling?: { name: string; value: number };
  /** value / ceiling, or ceiling / value for "lower is better" figures (then `inverse`). */
  ratio?: number;
  target?: { text: string; pass: boolean };
  /** Extra absolute figures shown beside the value. */
  detail?: string;
}

export function ratioOf(value: number, ceiling: number): number {
  return ceiling > 0 ? value / ceiling : NaN;
}

/** Wall-clock milliseconds with sub-millisecond resolution (same clock as Date.now()). */
/**
 * Wall-clock milliseconds with sub-millisecond steps, in the clock domain of Postgres's
 * `clock_timestamp()` (CLOCK_REALTIME). `performance.timeOrigin + performance.now()` alone
 * follows the monotonic clock from the process start and drifts from the wall clock when the
 * system clock is adjusted; re-anchoring on `Date.now()` every second follows adjustments.
 */
let anchor = Date.now() - performance.now();
let anchoredAt = performance.now();
export function nowMs(): number {
  const p = performance.now();
  if (p - anchoredAt > 1000) {
    anchor = Date.now() - p;
    anchoredAt = p;
  }
  return anchor + p;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(values: number[]): { n: number; p50: number; p95: number; p99: number; max: number; mean: number } {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN, mean };
}

/**
 * Epoch milliseconds (fractional) of an RFC 3339 timestamp with up to nanoseconds, as nats-server
 * and Postgres print them (`2025-01-02T03:04:05.123456789Z`, `2025-01-02 03:04:05.123456+00`).
 */
export function parseTimestampMs(s: string): number {
  const m = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d(?::?\d\d)?)?$/.exec(s.trim());
  if (!m) return NaN;
  let zone = m[4] ?? 'Z';
  if (/^[+-]\d\d$/.test(zone)) zone += ':00';
  const base = Date.parse(`${m[1]}T${m[2]}${zone}`);
  const frac = m[3] ? Number(`0.${m[3]}`) * 1000 : 0;
  return base + frac;
}

export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Env {
  pg: PgServer;
  nats: NatsServer;
  nc: NatsConnection;
}

/** Environment of a `walnats` process reading `db` of the bench Postgres. */
export function walnatsEnv(env: Env, db: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    WALNATS_PG_URL: env.pg.url(db),
    WALNATS_NATS_URL: env.nats.url,
    WALNATS_SNAPSHOT_MODE: 'never',
    WALNATS_LOG_LEVEL: 'info',
    WALNATS_LOG_PRETTY: 'false',
    NODE_ENV: 'development',
    ...extra,
  };
}

/** Waits for a JSON log line whose `msg` matches; returns its `time` in epoch ms. */
export async function waitForLog(d: DaemonProcess, re: RegExp, timeoutMs = 60_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const line of d.log().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const e = JSON.parse(line) as { msg?: string; time?: string | number };
        if (e.msg && re.test(e.msg)) return typeof e.time === 'number' ? e.time : Date.parse(String(e.time));
      } catch {
        /* partial line */
      }
    }
    if (Date.now() > end) throw new Error(`timed out waiting for log ${re}; log:\n${d.log().slice(-3000)}`);
    await sleep(20);
  }
}

/**
 * A `walnats` process (as test/harness spawnDaemon, plus options for the bench):
 *   WALNATS_BENCH_PROF=<dir>  node --cpu-prof: each process writes a V8 CPU profile there on exit
 *   WALNATS_BENCH_BIN=<path>  another checkout's bin/walnats.js (default: this one's)
 */
export function startWalnats(env: Env, db: string, extra: Record<string, string> = {}, command = 'cdc'): DaemonProcess {
  const prof = process.env.WALNATS_BENCH_PROF;
  return spawnDaemon(walnatsEnv(env, db, extra), command, {
    bin: process.env.WALNATS_BENCH_BIN,
    nodeArgs: prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [],
  });
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Current resident set size of a process, bytes. */
export function rssNow(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Waits until the stream holds at least `count` messages and has stopped growing; returns the
 * stream state (last_ts is the server's store time of the last message, ns precision).
 */
export async function waitForStream(nc: NatsConnection, stream: string, count: number, timeoutMs: number, onTick?: () => void): Promise<{ messages: number; lastSeq: number; firstTs: number; lastTs: number }> {
  const jsm = await jetstreamManager(nc);
  const end = Date.now() + timeoutMs;
  let stableSince = 0;
  let last = -1;
  for (;;) {
    onTick?.();
    let st: { messages: number; last_seq: number; first_ts: string; last_ts: string } | undefined;
    try {
      st = (await jsm.streams.info(stream)).state as unknown as typeof st;
    } catch {
      st = undefined;
    }
    if (st && st.messages >= count) {
      if (st.messages !== last) {
        last = st.messages;
        stableSince = Date.now();
      } else if (Date.now() - stableSince > 300) {
        return { messages: st.messages, lastSeq: st.last_seq, firstTs: parseTimestampMs(st.first_ts), lastTs: parseTimestampMs(st.last_ts) };
      }
    }
    if (Date.now() > end) throw new Error(`timed out: stream ${stream} has ${st?.messages ?? 0} of ${count} messages`);
    await sleep(st && st.messages >= count ? 50 : 25);
  }
}

/** Waits until the Postgres WAL is flushed up to its current insert position (async commits included). */
export async function waitWalFlushed(pg: PgServer, db: string): Promise<string> {
  const [{ lsn }] = await pg.sql<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn', [], db);
  for (;;) {
    const [{ ok }] = await pg.sql<{ ok: boolean }>('SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS ok', [lsn], db);
    if (ok) return lsn;
    await sleep(20);
  }
}

export async function deleteStream(nc: NatsConnection, stream: string): Promise<void> {
  try {
    await (await jetstreamManager(nc)).streams.delete(stream);
  } catch {
    /* not there */
  }
}

/** Drops a bench database and its slots (frees WAL and disk). */
export async function dropDatabase(pg: PgServer, db: string): Promise<void> {
  await pg.sql('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active', [db]).catch(() => {});
  await pg.sql(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => {});
}

/** Machine-wide CPU counters from /proc/stat; busyPct(a, b) = share of all cores busy between two readings. */
export function cpuTicks(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export function busyPct(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : NaN;
}

/**
 * CPU seconds used by every process whose command line matches `match` while the tracker
 * runs, including processes born and gone in between (a walsender lives only as long as its
 * replication connection): /proc is scanned every `everyMs` and each process's last reading
 * kept. A process that existed before the start counts from its first reading.
 */
export function trackProcessCpu(match: RegExp, everyMs = 50): { stop(): number } {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  // pids seen not to match, forgotten every 10 scans: a forked process shows its parent's
  // command line until it sets its own title (a Postgres backend becoming a walsender). Its
  // CPU counts from its birth whenever it is found, so finding it late loses nothing.
  const other = new Set<number>();
  let scans = 0;
  let started = false;
  const scan = () => {
    if (++scans % 10 === 0) other.clear();
    let pids: string[] = [];
    try {
      pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n));
    } catch {
      return;
    }
    for (const p of pids) {
      const pid = Number(p);
      if (other.has(pid)) continue;
      if (!last.has(pid)) {
        let cmd = '';
        try {
          cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        } catch {
          continue;
        }
        if (!match.test(cmd)) {
          other.add(pid);
          continue;
        }
      }
      const c = cpuSeconds(pid);
      if (Number.isNaN(c)) continue;
      if (!last.has(pid)) first.set(pid, started ? 0 : c);
      last.set(pid, c);
    }
  };
  scan();
  started = true;
  const timer = setInterval(scan, everyMs);
  return {
    stop() {
      scan();
      clearInterval(timer);
      let total = 0;
      for (const [pid, c] of last) total += c - (first.get(pid) ?? 0);
      return total;
    },
  };
}
