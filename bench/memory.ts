/**
 * Peak RSS (VmHWM) of a real `walnats cdc` process through one huge transaction, and through a
 * backlog built up while it was stopped.
 */
import { QUICK, cpuSeconds, deleteStream, dropDatabase, fmt, log, nowMs, rssNow, sleep, startWalnats, waitForLog, waitForStream, type Env, type Result } from './lib.ts';
import { TABLE_DDL, loadRows } from './cdc.ts';
import { defaultStreamName } from '../src/events/subject.ts';

const MB = 1024 * 1024;
const B_SQL = `md5(g::text) || md5((g + 1)::text)`;

export async function benchMemory(env: Env): Promise<Result[]> {
  const n = QUICK ? 100_000 : 1_000_000;
  const out: Result[] = [];

  // 1. One transaction of n rows, committed while the daemon streams.
  {
    log(`memory: ${fmt(n, 0)}-row transaction`);
    const db = await env.pg.createDatabase('mem_txn');
    await env.pg.sql(TABLE_DDL, [], db);
    const stream = defaultStreamName('walnats', db);
    const d = startWalnats(env, db);
    try {
      await waitForLog(d, /^streaming changes/);
      await sleep(300);
      const idle = rssNow(d.pid);
      const t0 = nowMs();
      await loadRows(env, db, n, n, B_SQL);
      const tCommit = nowMs();
      const st = await waitForStream(env.nc, stream, n, 900_000);
      const peak = d.peakRss();
      const secs = (st.lastTs - tCommit) / 1000;
      log(`  peak RSS ${fmt(peak / MB)} MB (idle ${fmt(idle / MB)} MB); commit→last ack ${fmt(secs)} s (insert took ${fmt((tCommit - t0) / 1000)} s)`);
      out.push({
        area: 'Memory', name: `peak RSS, one ${fmt(n, 0)}-row transaction`, value: peak / MB, unit: 'MB',
        target: { text: '< 250 MB', pass: peak / MB < 250 },
        detail: `idle ${fmt(idle / MB, 0)} MB; commit → last event acked ${fmt(secs)} s (${fmt(n / secs, 0)} events/s); daemon CPU ${fmt(cpuSeconds(d.pid))} s`,
      });
    } finally {
      await d.kill('SIGTERM');
    }
    await deleteStream(env.nc, stream);
    await dropDatabase(env.pg, db);
  }

  // 2. A backlog of n events (n/10 transactions of 10 rows) built while the daemon was stopped.
  {
    log(`memory: backlog of ${fmt(n, 0)} events`);
    const db = await env.pg.createDatabase('mem_backlog');
    await env.pg.sql(TABLE_DDL, [], db);
    const stream = defaultStreamName('walnats', db);
    const first = startWalnats(env, db);
    try {
      await waitForLog(first, /^streaming changes/);
    } finally {
      await first.kill('SIGTERM');
    }
    const tl = nowMs();
    await loadRows(env, db, n, 10, B_SQL);
    log(`  backlog written in ${fmt((nowMs() - tl) / 1000)} s`);
    const d = startWalnats(env, db);
    try {
      const tStart = await waitForLog(d, /^streaming changes/);
      const st = await waitForStream(env.nc, stream, n, 900_000);
      const peak = d.peakRss();
      const secs = (st.lastTs - tStart) / 1000;
      log(`  peak RSS ${fmt(peak / MB)} MB; drained in ${fmt(secs)} s`);
      out.push({
        area: 'Memory', name: `peak RSS, backlog of ${fmt(n, 0)} events (${fmt(n / 10, 0)} transactions)`, value: peak / MB, unit: 'MB',
        target: { text: '< 250 MB', pass: peak / MB < 250 },
        detail: `drained in ${fmt(secs)} s (${fmt(n / secs, 0)} events/s); daemon CPU ${fmt(cpuSeconds(d.pid))} s`,
      });
    } finally {
      await d.kill('SIGTERM');
    }
    await deleteStream(env.nc, stream);
    await dropDatabase(env.pg, db);
  }
  return out;
}
