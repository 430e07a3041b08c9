/**
 * Malformed configuration (test/fixtures/hostile/config/*.yaml and hostile values): every
 * problem is a ConfigError naming the key and where it came from — never a crash, a hang, a
 * value taken silently, or a secret echoed back. And the process exits 2 with all of them.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configScratch, problems } from '../fixtures/config.ts';
import { escapeToken, parseSubject, tableSubject, unescapeToken } from '../../src/events/subject.ts';
import { HOSTILE_NAMES, TRUNCATED_NAMES } from '../fixtures/hostile/names.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../fixtures/hostile/config');
const fixture = (name: string) => path.join(fixtures, name);
const { dir: tmp, load } = configScratch('walnats-hostile-config-');

describe('a YAML file with bad types', () => {
  it('reports every bad value at once, each with its key and line', () => {
    const p = problems(() => load({ argv: ['cdc', '--config', fixture('bad-types.yaml')] }));
    const byKey = Object.fromEntries(p.map((x) => [x.key, x]));
    expect(Object.keys(byKey).sort()).toEqual(
      ['create_slot', 'http_port', 'log_level', 'nats_url', 'pg_url', 'prefix', 'publish_ack_timeout', 'publish_window', 'snapshot_mode',
        'status_interval', 'stream_max_bytes', 'stream_name', 'stream_replicas', 'tables'].sort(),
    );
    for (const x of p) expect(x.source, x.key).toMatch(/bad-types\.yaml line \d+$/);
    expect(byKey.pg_url.message).toMatch(/expected a string, got a list/);
    expect(byKey.nats_url.message).toMatch(/got a mapping/);
    expect(byKey.http_port.message).toMatch(/integer.*"eighty"/);
    expect(byKey.publish_window.message).toMatch(/at least 1/);
    expect(byKey.prefix.message).toMatch(/subject prefix/);
  });
});

describe('unknown keys', () => {
  it('reports each unknown key with a suggestion when one is close, nested mappings and non-string keys included', () => {
    const p = problems(() => load({ argv: ['--config', fixture('unknown-keys.yaml')] }));
    const msgs = Object.fromEntries(p.map((x) => [x.key, x.message]));
    expect(msgs.pg_ulr).toMatch(/unknown setting \(did you mean pg_url\?\)/);
    expect(msgs.PG_URL).toMatch(/unknown setting/);
    expect(msgs.natsurl).toMatch(/did you mean nats_url/);
    expect(msgs.cdc).toMatch(/unknown setting/);
    expect(msgs['']).toMatch(/unknown setting/);
    expect(msgs['slöt']).toMatch(/unknown setting/);
    expect(msgs['1']).toMatch(/unknown setting/);
    expect(p.length).toBeGreaterThanOrEqual(8);
  });
});

describe('YAML that is malformed or malicious', () => {
  it('an alias bomb is refused quickly, as config errors, without being expanded', () => {
    const t = performance.now();
    const p = problems(() => load({ argv: ['--config', fixture('aliases.yaml')] }));
    expect(performance.now() - t).toBeLessThan(5000);
    // The anchors sit under unknown keys (reported, never expanded); the one alias that
    // reaches a setting is a list of lists, refused by type.
    expect(p.filter((x) => x.message === 'unknown setting').map((x) => x.key)).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    expect(p).toContainEqual(expect.objectContaining({ key: 'tables', message: expect.stringMatching(/list of strings/) }));
  });

  it('duplicate keys, two documents, tab indentation and binary garbage are YAML errors with a line', () => {
    for (const name of ['duplicate-keys.yaml', 'two-documents.yaml', 'tab-indent.yaml', 'binary.yaml']) {
      const p = problems(() => load({ argv: ['--config', fixture(name)] }));
      expect(p.length, name).toBeGreaterThan(0);
      expect(p[0].source, name).toContain(name);
    }
  });

  it('a byte-order mark is not part of the first key', () => {
    const { config } = load({ argv: ['--config', fixture('bom.yaml')] });
    expect(config.slot).toBe('with-bom');
  });

  it('a directory as the config file is a clear error', () => {
    const p = problems(() => load({ argv: ['--config', tmp] }));
    expect(p).toEqual([expect.objectContaining({ key: 'config', message: expect.stringMatching(/cannot read/) })]);
  });
});

describe('a pg_url that is not a URL', () => {
  const cases: Array<[string, RegExp]> = [
    ['not a url', /expected a postgres:\/\/.*URL/],
    ['host=db dbname=shop user=walnats', /key=value strings are not supported/],
    ['mysql://u@h/db', /expected a postgres:\/\//],
    ['http://h/db', /expected a postgres:\/\//],
    ['postgres://u:hunter2@[::1/db', /not a valid postgres:\/\/ URL/],
    ['postgres://u:hunter2@h:99999/db', /not a valid postgres:\/\/ URL/],
  ];
  for (const [url, why] of cases) {
    it(`${JSON.stringify(url.replace('hunter2', '…'))} is refused before anything connects, without echoing it`, () => {
      const p = problems(() => load({ argv: ['cdc'], env: { WALNATS_PG_URL: url } }));
      expect(p).toEqual([expect.objectContaining({ key: 'pg_url', source: 'env WALNATS_PG_URL', message: expect.stringMatching(why) })]);
      expect(p[0].message).not.toContain('hunter2');
    });
  }
  it('postgres:// and postgresql:// URLs, with TLS parameters, are accepted', () => {
    for (const url of ['postgres://u:p@h:5432/db', 'postgresql://h/db?sslmode=verify-full&sslrootcert=/ca.crt']) {
      expect(load({ argv: ['cdc'], env: { WALNATS_PG_URL: url } }).config.pgUrl).toBe(url);
    }
  });
});

describe('hostile values in other settings', () => {
  it('NATS URLs with spaces or paths, empty prefixes and slot names are refused', () => {
    const p = problems(() =>
      load({ env: { WALNATS_NATS_URL: 'nats://a b:4222', WALNATS_PREFIX: 'a..b', WALNATS_SLOT: '', WALNATS_HTTP_PORT: '8080; rm -rf /' } }),
    );
    expect(p.map((x) => x.key).sort()).toEqual(['http_port', 'nats_url', 'prefix', 'slot']);
  });
});

describe('the process', () => {
  it('walnats cdc with a hostile config file exits 2 and lists every problem, no stack trace', () => {
    const bin = path.resolve(here, '../../bin/walnats.js');
    const r = spawnSync(process.execPath, [bin, 'cdc', '--config', fixture('bad-types.yaml')], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/14 problems/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 30_000);
});

describe('hostile names as subject tokens (pure)', () => {
  it('every hostile name escapes into one valid token and decodes back; no two collide', () => {
    const tokens = new Set<string>();
    for (const n of [...HOSTILE_NAMES, ...TRUNCATED_NAMES.map(([, kept]) => kept)]) {
      const t = escapeToken(n);
      expect(t, JSON.stringify(n)).toMatch(/^[A-Za-z0-9_%-]+$/);
      expect(unescapeToken(t)).toBe(n);
      const subject = tableSubject('walnats', n, n, n, 'update');
      expect(parseSubject('walnats', subject)).toEqual({ kind: 'table', db: n, schema: n, table: n, op: 'update' });
      expect(tokens.has(t), JSON.stringify(n)).toBe(false);
      tokens.add(t);
    }
  });
});
