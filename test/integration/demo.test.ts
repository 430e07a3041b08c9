/**
 * `walnats demo`, the README's first command, as a user runs it: throwaway servers, the
 * sample schema, events tailing on the terminal, and on Ctrl-C everything stopped and removed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/walnats.js');

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Starts the demo as a terminal would: its own process group (the foreground job). */
async function startDemo() {
  let out = '';
  const child = spawn(process.execPath, [BIN, 'demo', '--http-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await waitFor('live insert events of the sample schema', async () => /walnats\.shop\.public\.orders\.insert\n\s+\{"op":"c"/.test(out) || undefined, 60_000, 200);
  const pgPort = Number(/Postgres:\s+postgres:\/\/postgres@127\.0\.0\.1:(\d+)\/shop/.exec(out)![1]);
  const natsPort = Number(/NATS:\s+nats:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
  return { child, exited, out: () => out, pgPort, natsPort };
}

/** Sends `signal` to the demo's whole process group, as a terminal does: it exits 0, its servers gone. */
async function stopsCleanly(d: Awaited<ReturnType<typeof startDemo>>, signal: NodeJS.Signals): Promise<void> {
  process.kill(-d.child.pid!, signal);
  expect(await d.exited).toBe(0);
  expect(await listening(d.pgPort)).toBe(false);
  expect(await listening(d.natsPort)).toBe(false);
}

describe('walnats demo', () => {
  it('Ctrl-C in a terminal (SIGINT to the whole process group) stops walnats before its servers: no connection warnings, nothing left running', async () => {
    const d = await startDemo();
    try {
      expect(await listening(d.pgPort)).toBe(true);
      expect(await listening(d.natsPort)).toBe(true);
      // Its log lines are pretty even though its output is a pipe here (as with `| tee`).
      expect(d.out()).toMatch(/^\d\d:\d\d:\d\d WARN  GATEWAY IS OPEN/m);
      expect(d.out()).not.toMatch(/"level":/);
      const mark = d.out().length; // the open gateway's warning at start is expected
      await stopsCleanly(d, 'SIGINT');
      expect(d.out()).toMatch(/walnats demo: stopped, temporary servers removed\./);
      // Postgres used to get the same SIGINT and shut down under the running gateway and daemon.
      expect(d.out().slice(mark)).not.toMatch(/idle Postgres connection failed|terminating connection|"level":"(warn|error)"|\b(WARN|ERROR)\b/);
    } finally {
      if (d.child.exitCode === null) process.kill(-d.child.pid!, 'SIGKILL');
    }
  }, 120_000);

  it('a configuration error found at start (a validator that does not load) exits 2 and takes its servers with it', async () => {
    // A temporary directory of its own, so that what the demo leaves there is the demo's.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-demo-tmp-'));
    fs.chmodSync(tmp, 0o755); // Postgres runs as its own user
    const validators = path.join(tmp, 'validators');
    fs.mkdirSync(validators);
    fs.writeFileSync(path.join(validators, 'orders.mjs'), 'export default {\n');
    let out = '';
    let created = false;
    const child = spawn(process.execPath, [BIN, 'demo', '--http-port', '0', '--validators-dir', validators], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const watcher = setInterval(() => (created ||= fs.readdirSync(tmp).some((n) => n.startsWith('walnats-pg-'))), 20);
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearInterval(watcher);
    expect(code).toBe(2);
    expect(out).toMatch(/validators_dir: cannot load it \(line 2, column 1\): Unexpected end of input \(file .*orders\.mjs\)/);
    expect(created).toBe(true); // it did start its servers
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('walnats-'))).toEqual([]); // and removed them
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('a hangup (the terminal or ssh session closed) stops it like Ctrl-C, servers included', async () => {
    const d = await startDemo();
    try {
      await stopsCleanly(d, 'SIGHUP');
      expect(d.out()).toMatch(/SIGHUP received, shutting down/);
    } finally {
      if (d.child.exitCode === null) process.kill(-d.child.pid!, 'SIGKILL');
    }
  }, 120_000);

  it('a second signal exits at once and still takes its servers and their files with it', async () => {
    const d = await startDemo();
    const dirs = () => fs.readdirSync('/tmp').filter((n) => n.startsWith('walnats-pg-') || n.startsWith('walnats-nats-'));
    const before = dirs();
    try {
      // Two different signals: two of the same sent back to back may be delivered as one.
      process.kill(-d.child.pid!, 'SIGINT');
      process.kill(-d.child.pid!, 'SIGTERM');
      expect(await d.exited).toBe(143);
      expect(d.out()).toMatch(/SIGTERM again, exiting without draining/);
      await waitFor('the demo servers to stop', async () => (!(await listening(d.pgPort)) && !(await listening(d.natsPort))) || undefined, 20_000, 100);
      // its own two directories are gone (others may belong to tests running in parallel)
      expect(before.filter((n) => !dirs().includes(n)).length).toBeGreaterThanOrEqual(2);
    } finally {
      if (d.child.exitCode === null) process.kill(-d.child.pid!, 'SIGKILL');
    }
  }, 120_000);

  it('starts Postgres and NATS, tails the sample schema’s events, serves GraphQL, and on Ctrl-C removes everything', async () => {
    let out = '';
    const child = spawn(process.execPath, [BIN, 'demo', '--http-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor('live insert events of the sample schema', async () => /walnats\.shop\.public\.orders\.insert\n\s+\{"op":"c"/.test(out) || undefined, 60_000, 200);
      expect(out).toMatch(/walnats\.shop\.public\.customers\.read\n\s+\{"op":"r"/); // the initial snapshot
      const pgDir = /Postgres:\s+postgres:\/\/postgres@127\.0\.0\.1:(\d+)\/shop/.exec(out);
      expect(pgDir).not.toBeNull();
      const port = Number(/GraphiQL:\s+http:\/\/localhost:(\d+)\/graphql/.exec(out)![1]);
      const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ customers(order_by: {id: asc}, limit: 2) { name } }' }),
      });
      expect(((await res.json()) as { data: unknown }).data).toEqual({ customers: [{ name: 'Ada' }, { name: 'Grace' }] });
      const tmpDirs = () => fs.readdirSync('/tmp').filter((d) => d.startsWith('walnats-pg-') || d.startsWith('walnats-nats-'));
      const before = tmpDirs();
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(out).toMatch(/walnats demo: stopped, temporary servers removed\./);
      // The demo's own directories are gone (others may belong to tests running in parallel).
      expect(before.filter((d) => !tmpDirs().includes(d)).length).toBeGreaterThanOrEqual(2);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 120_000);
});
