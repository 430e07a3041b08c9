/**
 * `walnats all` in-process against its own Postgres and nats-server, for the end-to-end
 * suites: a database loaded from `schemaSql`, the daemon and the gateway behind one HTTP
 * port, waited for until /readyz answers.
 */
import { startPostgres, type PgServer } from './postgres.ts';
import { startNats, type NatsServer } from './nats.ts';
import { waitFor } from './ports.ts';
import { loadConfig } from '../../src/config.ts';
import { runAll, type RunHandle } from '../../src/main.ts';

export interface WalnatsAll {
  pgs: PgServer;
  nats: NatsServer;
  handle: RunHandle;
  /** http://127.0.0.1:<port> */
  base: string;
  db: string;
  stop(): Promise<void>;
}

export async function startWalnatsAll(opts: {
  db: string;
  schemaSql: string;
  adminSecret: string;
  readyTimeoutMs?: number;
  /** More WALNATS_* settings (JWT secret, permissions file, …). */
  env?: Record<string, string>;
}): Promise<WalnatsAll> {
  const [pgs, nats] = await Promise.all([startPostgres({ settings: { synchronous_commit: 'on' } }), startNats()]);
  let handle: RunHandle | undefined;
  const stop = async () => {
    await handle?.stop();
    await Promise.all([pgs.destroy(), nats.destroy()]);
  };
  try {
    const db = await pgs.createDatabase(opts.db);
    await pgs.sql(opts.schemaSql, [], db);
    const { config } = loadConfig({
      command: 'all',
      env: {
        WALNATS_PG_URL: pgs.url(db),
        WALNATS_NATS_URL: nats.url,
        WALNATS_HTTP_PORT: '0',
        WALNATS_SLOT: db,
        WALNATS_ADMIN_SECRET: opts.adminSecret,
        WALNATS_LOG_LEVEL: 'warn',
        WALNATS_LOG_PRETTY: 'false',
        ...opts.env,
      },
    });
    handle = await runAll(config);
    const base = `http://127.0.0.1:${handle.httpPort}`;
    await waitFor('walnats all to be ready', async () => (await fetch(`${base}/readyz`)).status === 200 || undefined, opts.readyTimeoutMs ?? 60_000, 100);
    return { pgs, nats, handle, base, db, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
