/**
 * Load generator of the query bench (forked by bench/gateway.ts): a closed loop of `concurrency`
 * outstanding requests for `seconds`, either GraphQL over HTTP to the gateway or the same SQL
 * through a `pg` pool. Reports completed requests and latencies over IPC.
 */
import pg from 'pg';
import { nowMs } from './lib.ts';
import { leanHttpConnection, type LeanHttpConnection } from './http-lean.ts';

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

/**
 * GraphQL over HTTP through bench/http-lean.ts: one keep-alive connection per worker, requests
 * written as one buffer and responses read by their length, so the load process costs the
 * gateway as little CPU as it can on a shared 2-core machine (node's http client took ≈ 0.2 ms
 * of CPU per request here, more than the pg client of the ceiling's run). Every response is
 * checked: status 200 and no `errors`.
 */
const target = cfg.url ? new URL(cfg.url) : undefined;
const head = target ? `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\naccept: application/json` : '';

async function gql(conn: LeanHttpConnection, c: number): Promise<void> {
  const r = await conn.request(head, Buffer.from(JSON.stringify({ query: cfg.query, variables: { c } })));
  if (r.status !== 200 || r.body.includes('"errors"')) throw new Error(`gateway ${r.status}: ${r.body.slice(0, 300)}`);
}

async function main() {
  const pool = cfg.mode === 'pg' ? new pg.Pool({ connectionString: cfg.pgUrl, max: cfg.poolSize ?? 10, options: '-c TimeZone=UTC -c IntervalStyle=iso_8601 -c DateStyle=ISO,YMD -c extra_float_digits=1' }) : undefined;
  const conns = target ? Array.from({ length: cfg.concurrency }, () => leanHttpConnection(target.hostname, Number(target.port))) : [];
  const one = async (worker: number): Promise<void> => {
    const c = 1 + Math.floor(Math.random() * cfg.customers);
    if (pool) {
      const params = [...cfg.params!];
      params[cfg.paramIndex!] = typeof params[cfg.paramIndex!] === 'string' ? String(c) : c;
      await pool.query(cfg.sql!, params);
    } else await gql(conns[worker], c);
  };
  await one(0); // fail early
  const tStart = nowMs();
  const tMeasure = tStart + cfg.warmupSeconds * 1000;
  const tEnd = tMeasure + cfg.seconds * 1000;
  const lat: number[] = [];
  let done = 0;
  await Promise.all(Array.from({ length: cfg.concurrency }, async (_, worker) => {
    for (;;) {
      const t0 = nowMs();
      if (t0 >= tEnd) return;
      await one(worker);
      const t1 = nowMs();
      if (t0 >= tMeasure && t1 <= tEnd) {
        done++;
        lat.push(t1 - t0);
      }
    }
  }));
  await pool?.end();
  for (const c of conns) c.close();
  process.send!({ done, seconds: cfg.seconds, lat });
}

main().catch((err) => {
  process.send!({ error: String((err as Error)?.stack ?? err) });
});
