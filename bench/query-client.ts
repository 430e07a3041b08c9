/**
 * Load generator of the query bench (forked by bench/gateway.ts): a closed loop of `concurrency`
 * outstanding requests for `seconds`, either GraphQL over HTTP to the gateway or the same SQL
 * through a `pg` pool. Reports completed requests and latencies over IPC.
 */
import http from 'node:http';
import pg from 'pg';
import { nowMs } from './lib.ts';

interface Config {
  mode: 'gateway' | 'pg';
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
  /** gateway */
  url?: string;
  query?: string;
  /** pg */
  pgUrl?: string;
  poolSize?: number;
  sql?: string;
  params?: unknown[];
  /** Index of the customer id in params. */
  paramIndex?: number;
  customers: number;
}

const cfg = JSON.parse(process.argv[2]) as Config;
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });

function gql(c: number): Promise<void> {
  const body = JSON.stringify({ query: cfg.query, variables: { c } });
  return new Promise((resolve, reject) => {
    const req = http.request(cfg.url!, { method: 'POST', agent, headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200 || text.includes('"errors"')) reject(new Error(`gateway ${res.statusCode}: ${text.slice(0, 300)}`));
        else resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function main() {
  const pool = cfg.mode === 'pg' ? new pg.Pool({ connectionString: cfg.pgUrl, max: cfg.poolSize ?? 10, options: '-c TimeZone=UTC -c IntervalStyle=iso_8601 -c DateStyle=ISO,YMD -c extra_float_digits=1' }) : undefined;
  const one = async (): Promise<void> => {
    const c = 1 + Math.floor(Math.random() * cfg.customers);
    if (pool) {
      const params = [...cfg.params!];
      params[cfg.paramIndex!] = typeof params[cfg.paramIndex!] === 'string' ? String(c) : c;
      await pool.query(cfg.sql!, params);
    } else await gql(c);
  };
  await one(); // fail early
  const tStart = nowMs();
  const tMeasure = tStart + cfg.warmupSeconds * 1000;
  const tEnd = tMeasure + cfg.seconds * 1000;
  const lat: number[] = [];
  let done = 0;
  await Promise.all(Array.from({ length: cfg.concurrency }, async () => {
    for (;;) {
      const t0 = nowMs();
      if (t0 >= tEnd) return;
      await one();
      const t1 = nowMs();
      if (t0 >= tMeasure && t1 <= tEnd) {
        done++;
        lat.push(t1 - t0);
      }
    }
  }));
  await pool?.end();
  agent.destroy();
  process.send!({ done, seconds: cfg.seconds, lat });
}

main().catch((err) => {
  process.send!({ error: String((err as Error)?.stack ?? err) });
});
