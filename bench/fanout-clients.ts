/**
 * Subscriber process of the fan-out bench (forked by bench/gateway.ts, talks over IPC).
 * Opens N WebSockets to either the gateway (graphql-ws protocol, one subscription each) or the
 * raw broadcast server, counts every message, and on a sample of the sockets parses the payload
 * to measure commit → client latency from the row's `ts` column.
 *
 * IPC in:  {cmd:'stats'} | {cmd:'reset'} | {cmd:'close'}    IPC out: {ready:true} | {stats} | {reset:true} | {error}
 */
import WebSocket from 'ws';
import { nowMs, parseTimestampMs } from './lib.ts';

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
const sockets: WebSocket[] = [];
const counts: number[] = new Array(cfg.count).fill(0);
let received = 0;
let first = 0;
let last = 0;
const latencies: number[] = [];
const errors: string[] = [];

function send(m: unknown) {
  process.send!(m);
}

function open(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = cfg.mode === 'graphql-ws' ? new WebSocket(cfg.url, 'graphql-transport-ws') : new WebSocket(cfg.url);
    sockets.push(ws);
    const sample = i % cfg.sampleEvery === 0;
    ws.once('error', reject);
    ws.on('close', (code, reason) => {
      if (code !== 1000 && code !== 1005) errors.push(`socket ${i} closed ${code} ${reason}`);
    });
    ws.on('open', () => {
      if (cfg.mode === 'raw') return resolve();
      ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
    });
    ws.on('message', (data: Buffer) => {
      if (cfg.mode === 'graphql-ws') {
        // Cheap type check without parsing: every message starts with {"id":..,"type":.. or {"type":..
        const head = data.subarray(0, 48).toString('latin1');
        if (!head.includes('"next"')) {
          const m = JSON.parse(data.toString()) as { type: string; payload?: unknown };
          if (m.type === 'connection_ack') {
            ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: cfg.query } }));
            resolve();
          } else if (m.type === 'error') errors.push(`socket ${i}: ${JSON.stringify(m.payload).slice(0, 300)}`);
          else if (m.type === 'ping') ws.send('{"type":"pong"}');
          else if (m.type === 'complete') errors.push(`socket ${i}: the server completed the subscription`);
          return;
        }
      }
      const t = nowMs();
      received++;
      counts[i]++;
      if (!first) first = t;
      last = t;
      if (sample) {
        const m = JSON.parse(data.toString()) as { payload: { data: Record<string, { new: { ts: string } }>; errors?: unknown } };
        if (m.payload.errors) errors.push(`socket ${i}: ${JSON.stringify(m.payload.errors).slice(0, 300)}`);
        const ts = m.payload.data?.[cfg.field]?.new?.ts;
        if (ts) latencies.push(t - parseTimestampMs(ts));
      }
    });
  });
}

async function main() {
  for (let i = 0; i < cfg.count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, cfg.count - i) }, (_, k) => open(i + k)));
  }
  send({ ready: true });
}

process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'stats') {
    send({ stats: { received, first, last, latencies, errors: errors.slice(0, 20), errorCount: errors.length, minPerSocket: Math.min(...counts), maxPerSocket: Math.max(...counts) } });
  } else if (m.cmd === 'reset') {
    received = 0;
    first = 0;
    last = 0;
    latencies.length = 0;
    counts.fill(0);
    send({ reset: true });
  } else if (m.cmd === 'close') {
    for (const s of sockets) s.terminate();
    setTimeout(() => process.exit(0), 50);
  }
});

main().catch((err) => {
  send({ error: String((err as Error)?.stack ?? err) });
  setTimeout(() => process.exit(1), 50);
});
