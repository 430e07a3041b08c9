/**
 * The systemd units run here as systemd would run them, minus the sandbox (no systemd as
 * PID 1 on CI): the ExecStart command line (with /opt/walnats → this checkout), an
 * environment made of nothing but PATH, the unit's Environment= lines and then the example
 * EnvironmentFile — only the addresses point at this test's Postgres and NATS and the ports
 * at free ones. Events must flow: a write through the gateway reaches JetStream through the
 * daemon, and both stop cleanly on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { waitForSubject } from '../harness/stream.ts';
import { connectNats } from '../../src/nats-connection.ts';
import { defaultStreamName } from '../../src/events/subject.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, 'deploy/systemd');

interface UnitRun {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

/** What systemd would exec for a unit: argv, working directory and environment. */
function unitRun(name: string, overrides: Record<string, string>): UnitRun {
  const text = fs.readFileSync(path.join(DIR, name), 'utf8');
  let section = '';
  const run: UnitRun = { argv: [], cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } };
  const envFiles: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      section = line;
      continue;
    }
    if (section !== '[Service]') continue;
    const i = line.indexOf('=');
    const key = line.slice(0, i);
    const value = line.slice(i + 1).replaceAll('/opt/walnats', ROOT);
    if (key === 'ExecStart') run.argv = value.split(/\s+/);
    else if (key === 'WorkingDirectory') run.cwd = value;
    else if (key === 'Environment') run.env[value.slice(0, value.indexOf('='))] = value.slice(value.indexOf('=') + 1);
    else if (key === 'EnvironmentFile') envFiles.push(value);
  }
  // EnvironmentFile= is read after Environment=; the installed file is the example.
  expect(envFiles).toEqual(['/etc/walnats/walnats.env']);
  for (const raw of fs.readFileSync(path.join(DIR, 'walnats.env.example'), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line && !line.startsWith('#')) run.env[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  Object.assign(run.env, overrides);
  // /usr/bin/node → the node running the tests (same major version).
  expect(run.argv[0]).toBe('/usr/bin/node');
  run.argv[0] = process.execPath;
  return run;
}

interface Proc {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function start(run: UnitRun): Proc {
  let log = '';
  const child = spawn(run.argv[0], run.argv.slice(1), { cwd: run.cwd, env: run.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, log: () => log, exited };
}

async function stop(p: Proc | undefined): Promise<number | null> {
  if (!p) return null;
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  return p.exited;
}

let pgs: PgServer;
let nats: NatsServer;
let db: string;
let cdc: Proc | undefined;
let gateway: Proc | undefined;

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres({ settings: { synchronous_commit: 'on' } }), startNats()]);
  db = await pgs.createDatabase('systemd');
  await pgs.sql(fs.readFileSync(path.join(ROOT, 'deploy/compose/sample-schema.sql'), 'utf8'), [], db);
});

afterAll(async () => {
  await Promise.all([stop(gateway), stop(cdc)]);
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

describe('deploy/systemd units, run with their own command line and environment', () => {
  it('walnats-cdc.service and walnats-gateway.service: a mutation through the gateway arrives on JetStream', async () => {
    const addresses = { WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url };
    const cdcRun = unitRun('walnats-cdc.service', { ...addresses, WALNATS_HTTP_PORT: String(await freePort()) });
    const gwRun = unitRun('walnats-gateway.service', { ...addresses, WALNATS_HTTP_PORT: String(await freePort()), WALNATS_HTTP_HOST: '127.0.0.1' });
    expect(cdcRun.argv.slice(1)).toEqual([path.join(ROOT, 'bin/walnats.js'), 'cdc']);
    expect(gwRun.argv.slice(1)).toEqual([path.join(ROOT, 'bin/walnats.js'), 'gateway']);
    expect(cdcRun.env.NODE_ENV).toBe('production');
    expect(gwRun.env.NODE_ENV).toBe('production');
    const secret = gwRun.env.WALNATS_ADMIN_SECRET;
    expect(secret).toBeTruthy();

    cdc = start(cdcRun);
    const cdcBase = `http://127.0.0.1:${cdcRun.env.WALNATS_HTTP_PORT}`;
    await waitFor(`walnats cdc ready\n${cdc.log()}`, async () => {
      if (cdc!.child.exitCode !== null) throw new Error(`walnats cdc exited with ${cdc!.child.exitCode}:\n${cdc!.log()}`);
      return (await fetch(`${cdcBase}/readyz`).then((r) => r.status, () => 0)) === 200 || undefined;
    }, 45_000, 100);

    gateway = start(gwRun);
    const gwBase = `http://127.0.0.1:${gwRun.env.WALNATS_HTTP_PORT}`;
    await waitFor('walnats gateway ready', async () => {
      if (gateway!.child.exitCode !== null) throw new Error(`walnats gateway exited with ${gateway!.child.exitCode}:\n${gateway!.log()}`);
      return (await fetch(`${gwBase}/readyz`).then((r) => r.status, () => 0)) === 200 || undefined;
    }, 45_000, 100);

    const gql = async (query: string, headers: Record<string, string> = { 'x-walnats-admin-secret': secret }) => {
      const res = await fetch(`${gwBase}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }) });
      return { status: res.status, body: (await res.json()) as { data?: any; errors?: unknown[] } };
    };
    // Production mode with an admin secret: anonymous requests are refused.
    expect((await gql('{ customers { id } }', {})).status).toBe(401);
    const q = await gql('{ customers(order_by: {id: asc}) { name } }');
    expect(q.body.errors).toBeUndefined();
    expect(q.body.data.customers.map((c: { name: string }) => c.name)).toEqual(['Ada Lovelace', 'Grace Hopper']);

    const m = await gql('mutation { insert_orders_one(object: {customer_id: 2, qty: 3, price: "12.50", tags: ["systemd"]}) { id } }');
    expect(m.body.errors).toBeUndefined();

    const nc = await connectNats({ natsUrl: [nats.url] }, 'systemd-test');
    try {
      const [e] = await waitForSubject(nc, defaultStreamName('walnats', db), `walnats.${db}.public.orders.insert`, 1);
      expect(e.body.op).toBe('c');
      expect(e.body.after).toMatchObject({ customer_id: 2, qty: 3, price: '12.50', tags: ['systemd'] });
      expect(e.headers['Nats-Msg-Id']).toBe(`${e.body.source.commit_lsn}:${e.body.source.seq}`);
    } finally {
      await nc.close();
    }

    // JSON logs (WALNATS_LOG_PRETTY=false), as journald should get them.
    const firstLine = cdc.log().split('\n').find((l) => l.trim())!;
    expect(() => JSON.parse(firstLine)).not.toThrow();
    const metrics = await (await fetch(`${cdcBase}/metrics`)).text();
    expect(metrics).toMatch(/walnats_events_total\{table="public\.orders",op="insert"\} 1/);

    // Graceful stop on SIGTERM (KillSignal=SIGTERM): exit code 0 within TimeoutStopSec.
    const t0 = Date.now();
    expect(await stop(gateway)).toBe(0);
    expect(await stop(cdc)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('walnats.service (walnats all) answers and publishes too', async () => {
    const run = unitRun('walnats.service', { WALNATS_PG_URL: pgs.url(db), WALNATS_NATS_URL: nats.url, WALNATS_HTTP_PORT: String(await freePort()), WALNATS_HTTP_HOST: '127.0.0.1' });
    expect(run.argv.at(-1)).toBe('all');
    const all = start(run);
    try {
      const base = `http://127.0.0.1:${run.env.WALNATS_HTTP_PORT}`;
      await waitFor('walnats all ready', async () => {
        if (all.child.exitCode !== null) throw new Error(`walnats all exited with ${all.child.exitCode}:\n${all.log()}`);
        return (await fetch(`${base}/readyz`).then((r) => r.status, () => 0)) === 200 || undefined;
      }, 45_000, 100);
      await pgs.sql(`UPDATE customers SET name = 'Grace Brewster Hopper' WHERE id = 2`, [], db);
      const nc = await connectNats({ natsUrl: [nats.url] }, 'systemd-test');
      try {
        const [e] = await waitForSubject(nc, defaultStreamName('walnats', db), `walnats.${db}.public.customers.update`, 1);
        expect(e.body.after.name).toBe('Grace Brewster Hopper');
      } finally {
        await nc.close();
      }
    } finally {
      expect(await stop(all)).toBe(0);
    }
  });
});
