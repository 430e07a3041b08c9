/**
 * Subscriber process of the fan-out bench (forked by bench/gateway.ts, talks over IPC).
 * Opens N WebSockets to either the gateway (graphql-ws protocol, one subscription each) or the
 * raw broadcast server, counts every message, and on a sample of the sockets parses the payload
 * to measure commit → client latency from the row's `ts` column.
 *
 * The sockets are a minimal RFC 6455 client over `net` (bench/ws-lean.ts), not the `ws`
 * package: 1,000 sockets × 100 events/s is 100,000 messages a second, and with `ws` this
 * process alone took ≈ 0.8 of the machine's 2 cores, so the latency measured was mostly its own
 * queueing. A load generator should cost as little as it can (as wrk does for HTTP): here a
 * message that is not sampled costs finding its frame boundary and one byte comparison.
 *
 * IPC in:  {cmd:'stats', latencies?: true} | {cmd:'reset'} | {cmd:'close'}    IPC out: {ready:true} | {stats} | {reset:true} | {error}
 */
import fs from 'node:fs';
import { nowMs, parseTimestampMs } from './lib.ts';
import { leanWebSocket, type LeanWebSocket } from './ws-lean.ts';

interface Config {
  url: string;
  mode: 'graphql-ws' | 'raw';
  count: number;
  /** Parse payloads on every k-th socket. */
  sampleEvery: number;
  query: string;
  field: string;
}

const cfg = JSON.parse(process.argv[2]) as Config;
const sockets: LeanWebSocket[] = [];
const counts: number[] = new Array(cfg.count).fill(0);
let received = 0;
let first = 0;
let last = 0;
const latencies: number[] = [];
const errors: string[] = [];
/** WALNATS_BENCH_FANOUT_DUMP=<file>: every sampled delivery (socket, row id, receive time, latency), to see where latency comes from. */
const dumpTo = process.env.WALNATS_BENCH_FANOUT_DUMP;
const dump: string[] = [];
process.on('exit', () => {
  if (dumpTo) fs.writeFileSync(dumpTo, dump.join('\n'));
});
/** Every `next` frame of graphql-ws (and of the raw broadcast) starts with these bytes. */
const NEXT = Buffer.from('{"id":"1","type":"next"');

function send(m: unknown) {
  process.send!(m);
}

function open(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sample = i % cfg.sampleEvery === 0;
    let ready = false;
    const ws = leanWebSocket(cfg.url, cfg.mode === 'graphql-ws' ? 'graphql-transport-ws' : undefined, {
      onOpen() {
        if (cfg.mode === 'raw') {
          ready = true;
          return resolve();
        }
        ws.sendText(JSON.stringify({ type: 'connection_init', payload: {} }));
      },
      onText(data, start, end) {
        const isNext = end - start >= NEXT.length && data.compare(NEXT, 0, NEXT.length, start, start + NEXT.length) === 0;
        if (!isNext) {
          const m = JSON.parse(data.toString('utf8', start, end)) as { type: string; payload?: unknown };
          if (m.type === 'connection_ack') {
            ws.sendText(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: cfg.query } }));
            ready = true;
            resolve();
          } else if (m.type === 'error') errors.push(`socket ${i}: ${JSON.stringify(m.payload).slice(0, 300)}`);
          else if (m.type === 'ping') ws.sendText('{"type":"pong"}');
          else if (m.type === 'complete') errors.push(`socket ${i}: the server completed the subscription`);
          else errors.push(`socket ${i}: unexpected message ${data.toString('utf8', start, Math.min(end, start + 200))}`);
          return;
        }
        const t = nowMs();
        received++;
        counts[i]++;
        if (!first) first = t;
        last = t;
        if (sample) {
          const m = JSON.parse(data.toString('utf8', start, end)) as { payload: { data: Record<string, { new: { ts: string } }>; errors?: unknown } };
          if (m.payload.errors) errors.push(`socket ${i}: ${JSON.stringify(m.payload.errors).slice(0, 300)}`);
          const ts = m.payload.data?.[cfg.field]?.new?.ts;
          if (ts) latencies.push(t - parseTimestampMs(ts));
          if (dumpTo && ts) dump.push(`${i} ${(m.payload.data[cfg.field].new as unknown as { id: string }).id} ${t.toFixed(2)} ${(t - parseTimestampMs(ts)).toFixed(2)}`);
        }
      },
      onClose(code, reason) {
        if (!ready) reject(new Error(`socket ${i} closed before it was ready: ${code} ${reason}`));
        else if (code !== 1000 && code !== 1005) errors.push(`socket ${i} closed ${code} ${reason}`);
      },
      onError(err) {
        if (!ready) reject(err);
        else errors.push(`socket ${i}: ${err.message}`);
      },
    });
    sockets.push(ws);
  });
}

async function main() {
  for (let i = 0; i < cfg.count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, cfg.count - i) }, (_, k) => open(i + k)));
  }
  send({ ready: true });
}

process.on('message', (m: { cmd: string; latencies?: boolean }) => {
  if (m.cmd === 'stats') {
    // the latency samples (up to 100,000 numbers) only when asked: serializing them held this process's event loop
    send({ stats: { received, first, last, latencies: m.latencies ? latencies : [], errors: errors.slice(0, 20), errorCount: errors.length, minPerSocket: Math.min(...counts), maxPerSocket: Math.max(...counts) } });
  } else if (m.cmd === 'reset') {
    received = 0;
    first = 0;
    last = 0;
    latencies.length = 0;
    counts.fill(0);
    send({ reset: true });
  } else if (m.cmd === 'close') {
    for (const s of sockets) s.destroy();
    setTimeout(() => process.exit(0), 50);
  }
});

main().catch((err) => {
  send({ error: String((err as Error)?.stack ?? err) });
  setTimeout(() => process.exit(1), 50);
});
