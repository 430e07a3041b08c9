/**
 * `walnats demo`, the README's first command, as a user runs it: throwaway servers, the
 * sample schema, events tailing on the terminal, and on Ctrl-C everything stopped and removed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/walnats.js');

describe('walnats demo', () => {
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
