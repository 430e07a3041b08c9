/**
 * deploy/systemd: `systemd-analyze verify` (syntax, directives, executables) and
 * `systemd-analyze security --offline` (sandboxing) on every unit, and checks that tie the
 * units to the code: the command exists, the environment is accepted by the config loader,
 * and the hardening and restart policy promised in the docs are there.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, loadConfig, type Command } from '../../src/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIR = path.join(ROOT, 'deploy/systemd');
const UNITS = ['walnats-cdc.service', 'walnats-gateway.service', 'walnats.service'];

/** [section, key, value] of every assignment, in order. */
function parseUnit(text: string): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) section = s[1];
    else {
      const i = line.indexOf('=');
      out.push([section, line.slice(0, i), line.slice(i + 1)]);
    }
  }
  return out;
}

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf('=');
    env[line.slice(0, i)] = line.slice(i + 1).replace(/^"(.*)"$/, '$1');
  }
  return env;
}

function unit(name: string) {
  const entries = parseUnit(fs.readFileSync(path.join(DIR, name), 'utf8'));
  const get = (section: string, key: string) => entries.filter(([s, k]) => s === section && k === key).map(([, , v]) => v);
  return { entries, get };
}

describe('deploy/systemd', () => {
  it.each(UNITS)('%s passes systemd-analyze verify without a warning', (name) => {
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(DIR, name)], { encoding: 'utf8' });
    if (r.error) throw new Error(`systemd-analyze not found (apt-get install systemd): ${r.error.message}`);
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
  });

  it.each(UNITS)('%s is rated OK by systemd-analyze security --offline', (name) => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', path.join(DIR, name)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const m = /Overall exposure level for \S+: ([\d.]+) (\w+)/.exec(r.stdout);
    expect(m, r.stdout.slice(-500)).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(3);
  });

  it.each(UNITS)('%s runs a walnats command with an environment the config loader accepts', (name) => {
    const u = unit(name);
    const [exec] = u.get('Service', 'ExecStart');
    const argv = exec.split(/\s+/);
    expect(argv.slice(0, 2)).toEqual(['/usr/bin/node', '/opt/walnats/bin/walnats.js']);
    const command = argv[2] as Command;
    expect(COMMANDS).toContain(command);
    expect({ cdc: 'walnats-cdc.service', gateway: 'walnats-gateway.service', all: 'walnats.service' }[command as string]).toBe(name);

    const env: Record<string, string> = {};
    for (const v of u.get('Service', 'Environment')) {
      const i = v.indexOf('=');
      env[v.slice(0, i)] = v.slice(i + 1);
    }
    expect(u.get('Service', 'EnvironmentFile')).toEqual(['/etc/walnats/walnats.env']);
    Object.assign(env, parseEnvFile(fs.readFileSync(path.join(DIR, 'walnats.env.example'), 'utf8')));
    expect(() => loadConfig({ command, env })).not.toThrow();
    // Production mode: the gateway must have auth, which the example file gives it.
    expect(env.NODE_ENV).toBe('production');
    expect(env.WALNATS_ADMIN_SECRET).toBeTruthy();
  });

  it.each(UNITS)('%s is hardened and restarts on failure', (name) => {
    const u = unit(name);
    const one = (k: string) => u.get('Service', k).join(' ');
    expect(one('DynamicUser') === 'yes' || one('User') !== '').toBe(true);
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes'); // tsx's cache
    expect(one('CapabilityBoundingSet')).toBe('');
    expect(one('MemoryDenyWriteExecute')).toBe(''); // V8 JIT
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe('2');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(u.get('Install', 'WantedBy')).toEqual(['multi-user.target']);
  });

  it('the one-process unit and the two-unit form exclude each other', () => {
    expect(unit('walnats.service').get('Unit', 'Conflicts')).toEqual(['walnats-cdc.service walnats-gateway.service']);
    expect(unit('walnats-cdc.service').get('Unit', 'Conflicts')).toEqual(['walnats.service']);
    expect(unit('walnats-gateway.service').get('Unit', 'Conflicts')).toEqual(['walnats.service']);
  });
});
