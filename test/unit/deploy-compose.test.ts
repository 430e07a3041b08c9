/**
 * docker-compose.yml and the Dockerfile, checked without a container engine: Compose's own
 * validator (`docker-compose config`, Debian's docker-compose package) and structure checks
 * that tie the files to the code (every WALNATS_* variable is a real setting, health checks
 * hit the port the process listens on, dependencies wait for health).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfig, type Command } from '../../src/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const COMPOSE = path.join(ROOT, 'docker-compose.yml');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
}

const compose = YAML.parse(fs.readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const walnatsServices = Object.entries(services).filter(([, s]) => s.image?.startsWith('walnats'));

function composeBinary(): string[] | null {
  for (const cmd of [['docker-compose'], ['docker', 'compose']]) {
    const r = spawnSync(cmd[0], [...cmd.slice(1), 'version'], { encoding: 'utf8' });
    if (r.status === 0) return cmd;
  }
  return null;
}

describe('docker-compose.yml', () => {
  it('is valid for Compose (`docker-compose config`, no engine needed)', () => {
    const bin = composeBinary();
    if (!bin) throw new Error('no Compose CLI: install Debian\'s docker-compose package (apt-get install docker-compose)');
    const r = spawnSync(bin[0], [...bin.slice(1), '-f', COMPOSE, 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
    // The tools profile too.
    const p = spawnSync(bin[0], [...bin.slice(1), '-f', COMPOSE, '--profile', 'tools', 'config', '--services'], { cwd: ROOT, encoding: 'utf8' });
    expect(p.status).toBe(0);
    expect(p.stdout.split('\n').filter(Boolean).sort()).toEqual(['cdc', 'gateway', 'nats', 'nats-box', 'postgres']);
  });

  it('runs Postgres with logical replication and the sample schema', () => {
    const pg = services.postgres;
    expect(pg.command!.join(' ')).toContain('wal_level=logical');
    const init = pg.volumes!.find((v) => v.includes('/docker-entrypoint-initdb.d/'))!;
    expect(init).toBeTruthy();
    expect(fs.existsSync(path.join(ROOT, init.split(':')[0]))).toBe(true);
  });

  it('runs NATS with JetStream and a health check that needs JetStream', () => {
    const n = services.nats;
    expect(n.command).toContain('-js');
    expect(n.healthcheck!.test.join(' ')).toContain('/healthz?js-enabled-only=true');
  });

  it('runs walnats cdc and walnats gateway from the image built here', () => {
    expect(walnatsServices.map(([name, s]) => [name, s.command])).toEqual([
      ['cdc', ['cdc']],
      ['gateway', ['gateway']],
    ]);
    for (const [, s] of walnatsServices) expect(s.build).toBeTruthy();
  });

  it('gives every walnats service an environment that the configuration loader accepts', () => {
    for (const [name, s] of walnatsServices) {
      const env = s.environment!;
      expect(() => loadConfig({ command: s.command![0] as Command, env }), name).not.toThrow();
      // Each URL names a service of this file.
      expect(services[new URL(env.WALNATS_PG_URL).hostname], name).toBeDefined();
      expect(services[new URL(env.WALNATS_NATS_URL).hostname], name).toBeDefined();
      // The health check asks the port the process listens on, and that port is published.
      const port = env.WALNATS_HTTP_PORT;
      expect(s.healthcheck!.test.join(' '), name).toContain(`127.0.0.1:${port}/readyz`);
      expect(s.ports!.some((p) => p.endsWith(`:${port}`)), name).toBe(true);
    }
  });

  it('starts each service only once what it needs is healthy', () => {
    for (const [name, s] of Object.entries(services)) {
      if (!s.profiles) expect(s.healthcheck, `${name} has a health check`).toBeDefined();
      for (const [dep, d] of Object.entries(s.depends_on ?? {})) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        expect(d.condition, `${name} → ${dep}`).toBe('service_healthy');
        expect(services[dep].healthcheck, `${dep} has a health check`).toBeDefined();
      }
    }
    expect(Object.keys(services.cdc.depends_on!).sort()).toEqual(['nats', 'postgres']);
    expect(Object.keys(services.gateway.depends_on!)).toContain('cdc');
  });

  it('runs the gateway open only outside production, as the gateway requires', () => {
    const env = services.gateway.environment!;
    const authed = ['WALNATS_ADMIN_SECRET', 'WALNATS_JWT_SECRET', 'WALNATS_JWT_PUBLIC_KEY', 'WALNATS_JWT_JWKS_URL'].some((k) => k in env);
    if (!authed) expect(env.NODE_ENV).toBe('development');
  });
});

describe('Dockerfile', () => {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

  it('is multi-stage, installs production dependencies from the lock file, runs as a non-root user', () => {
    expect(lines.filter((l) => /^FROM /.test(l)).length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/npm ci --omit=dev/);
    const users = lines.filter((l) => /^USER /.test(l));
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^USER (root|0)\b/);
    expect(text).toMatch(/^ENTRYPOINT \["node", "\/app\/bin\/walnats\.js"\]$/m);
  });

  it('copies what the runtime needs, and .dockerignore lets it through', () => {
    const copies = lines.filter((l) => /^COPY /.test(l) && !l.includes('--from='));
    const sources = copies.flatMap((l) => l.replace(/^COPY (--\S+ )*/, '').split(/\s+/).slice(0, -1));
    expect(sources.sort()).toEqual(['bin', 'package-lock.json', 'package.json', 'package.json', 'src', 'tsconfig.json']);
    for (const s of new Set(sources)) {
      expect(fs.existsSync(path.join(ROOT, s)), s).toBe(true);
      expect(ignore.some((l) => l === `!${s}` || l === `!${s}/`), `.dockerignore lets ${s} through`).toBe(true);
    }
  });

  it('has tsx among the production dependencies (bin/walnats.js runs the sources through it)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies.tsx).toBeDefined();
    expect(fs.readFileSync(path.join(ROOT, 'bin/walnats.js'), 'utf8')).toContain("from 'tsx/esm/api'");
  });

  it('builds on the lock file that npm ci needs', () => {
    expect(() => execFileSync('git', ['ls-files', '--error-unmatch', 'package-lock.json'], { cwd: ROOT, stdio: 'pipe' })).not.toThrow();
  });
});
