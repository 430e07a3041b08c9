/**
 * `walnats demo`: a throwaway Postgres (wal_level=logical) and nats-server in a temporary
 * directory, a small shop schema with a writer that keeps changing it, walnats running
 * against both, and a tail of the events as they arrive on JetStream. Ctrl-C stops and
 * removes everything.
 */
import { execFileSync } from 'node:child_process';
import { ConfigError, type WalnatsConfig } from './config.ts';
import type { RunHandle } from './main.ts';
import { startPostgres, findPgBinDir, type PgServer } from './local/postgres.ts';
import { startNats, type NatsServer } from './local/nats.ts';
import { connectNats } from './nats-connection.ts';

const SAMPLE_SCHEMA = `
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  qty int NOT NULL,
  price numeric(10,2) NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  details jsonb,
  placed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com');
`;

function checkTools(): string[] {
  const missing: string[] = [];
  try {
    findPgBinDir();
  } catch {
    missing.push('postgresql');
  }
  try {
    execFileSync(process.env.WALNATS_NATS_SERVER ?? 'nats-server', ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('nats-server');
  }
  return missing;
}

/** One random change to the sample schema: mostly new orders, some updates and deletes. */
async function writeSomething(pgs: PgServer, db: string): Promise<void> {
  const r = Math.random();
  if (r < 0.1) {
    await pgs.sql(`INSERT INTO customers (name, email) VALUES ($1, $2)`, [`Customer ${Date.now() % 100000}`, `c${Date.now()}@example.com`], db);
  } else if (r < 0.6) {
    await pgs.sql(
      `INSERT INTO orders (customer_id, qty, price, tags, details)
       SELECT id, $1, $2, $3, $4 FROM customers ORDER BY random() LIMIT 1`,
      [1 + Math.floor(Math.random() * 5), (Math.random() * 100).toFixed(2), ['demo'], JSON.stringify({ gift: Math.random() < 0.3 })],
      db,
    );
  } else if (r < 0.85) {
    await pgs.sql('UPDATE orders SET qty = qty + 1 WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)', [], db);
  } else {
    await pgs.sql('DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)', [], db);
  }
}

export async function runDemo(config: WalnatsConfig): Promise<RunHandle> {
  const missing = checkTools();
  if (missing.length) {
    throw new Error(
      `walnats demo needs ${missing.join(' and ')} on this machine. On Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}`,
    );
  }
  const out = (line: string) => process.stdout.write(line + '\n');
  out('walnats demo: starting a throwaway Postgres and nats-server…');
  // Own process groups: Ctrl-C reaches walnats alone, which stops its work before the servers.
  const [pgs, nats] = await Promise.all([
    startPostgres({ settings: { synchronous_commit: 'on' }, ownProcessGroup: true }),
    startNats([], { ownProcessGroup: true }),
  ]);
  const db = 'shop';
  await pgs.sql(`CREATE DATABASE ${db}`);
  await pgs.sql(SAMPLE_SCHEMA, [], db);

  const { runAll, runCdc } = await import('./main.ts');
  const demoConfig: WalnatsConfig = {
    ...config,
    pgUrl: pgs.url(db),
    natsUrl: [nats.url],
    logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel,
  };
  let handle: RunHandle;
  try {
    try {
      handle = await runAll(demoConfig);
    } catch (err) {
      // The gateway may be unavailable in this build: the CDC half is the demo's core.
      if (err instanceof ConfigError || !/gateway/i.test((err as Error).message)) throw err;
      handle = await runCdc(demoConfig);
    }
  } catch (err) {
    // Not started (a validator that does not load, say): the servers go with it.
    await Promise.all([pgs.destroy(), nats.destroy()]);
    throw err;
  }
  const nc = await connectNats({ natsUrl: [nats.url] }, 'walnats-demo-tail');
  const prefix = config.prefix;
  const sub = nc.subscribe(`${prefix}.>`);
  out(`Postgres:  ${pgs.url(db)}`);
  out(`NATS:      ${nats.url}  (subjects ${prefix}.${db}.<schema>.<table>.<op>)`);
  out(`GraphiQL:  http://localhost:${handle.httpPort}/graphql`);
  out(`Metrics:   http://localhost:${handle.httpPort}/metrics`);
  out('Writing to customers and orders once a second; events as they arrive (Ctrl-C to stop):\n');
  void (async () => {
    for await (const m of sub) {
      const body = new TextDecoder().decode(m.data);
      out(`${m.subject}\n  ${body.length > 400 ? body.slice(0, 400) + '…' : body}`);
    }
  })();
  const writer = setInterval(() => {
    writeSomething(pgs, db).catch(() => {});
  }, 1000);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(writer);
      sub.unsubscribe();
      await nc.close();
      await handle.stop();
      await Promise.all([pgs.destroy(), nats.destroy()]);
      out('walnats demo: stopped, temporary servers removed.');
    })());
  return {
    done: handle.done.then(() => stop()),
    stop,
    httpPort: handle.httpPort,
  };
}
