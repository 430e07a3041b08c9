import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_SETTINGS,
  camelName,
  formatConfig,
  parseDuration,
  redactConfig,
  splitFlags,
  type LoadConfigOptions,
} from '../../src/config.ts';
import { configScratch, problems } from '../fixtures/config.ts';

const { dir, load } = configScratch('walnats-config-test-');

let n = 0;
function file(text: string, name = `c${++n}.yaml`): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('defaults', () => {
  it('has the documented defaults', () => {
    const { config } = load({});
    expect(config).toMatchObject({
      natsUrl: ['nats://127.0.0.1:4222'],
      httpPort: 8080,
      httpHost: '0.0.0.0',
      prefix: 'walnats',
      publication: 'walnats',
      slot: 'walnats',
      tables: [],
      createSlot: true,
      createPublication: true,
      snapshotMode: 'initial',
      streamName: undefined,
      streamReplicas: 1,
      streamDuplicateWindow: 120_000,
      streamMaxBytes: -1,
      streamMaxAge: 0,
      publishWindow: 4096,
      publishAckTimeout: 10_000,
      statusInterval: 1000,
      transactionMarkers: false,
      logLevel: 'info',
      logPretty: false,
      gatewaySchemas: ['public'],
      jwtClaimsNamespace: 'https://hasura.io/jwt/claims',
      gatewayMaxDepth: 10,
      gatewayMaxRows: 1000,
      gatewayStatementTimeout: 10_000,
      gatewayIntrospection: true,
      adminSecret: undefined,
      pgUrl: '',
    });
  });

  it('log_pretty defaults to whether stdout is a terminal', () => {
    expect(load({ stdoutIsTTY: true }).config.logPretty).toBe(true);
    expect(load({ stdoutIsTTY: false }).config.logPretty).toBe(false);
  });

  it('has one WalnatsConfig field per setting, named mechanically', () => {
    const { config } = load({});
    expect(Object.keys(config).sort()).toEqual(CONFIG_SETTINGS.map((s) => camelName(s.key)).sort());
  });
});

describe('precedence: flag > env > file > default, for every type', () => {
  // [key, file value (YAML), env value, flag value, expected from each]
  const cases: Array<{ key: string; file: string; env: string; flag: string; expect: [unknown, unknown, unknown, unknown] }> = [
    { key: 'prefix', file: 'fromfile', env: 'fromenv', flag: 'fromflag', expect: ['walnats', 'fromfile', 'fromenv', 'fromflag'] },
    { key: 'http_port', file: '1111', env: '2222', flag: '3333', expect: [8080, 1111, 2222, 3333] },
    { key: 'create_slot', file: 'false', env: 'true', flag: 'false', expect: [true, false, true, false] },
    { key: 'status_interval', file: '2s', env: '500ms', flag: '1h', expect: [1000, 2000, 500, 3_600_000] },
    { key: 'tables', file: '[public.a, public.b]', env: 'public.c', flag: 'x.d,y.e', expect: [[], ['public.a', 'public.b'], ['public.c'], ['x.d', 'y.e']] },
    { key: 'snapshot_mode', file: 'never', env: 'initial_only', flag: 'initial', expect: ['initial', 'never', 'initial_only', 'initial'] },
  ];
  for (const c of cases) {
    it(`${c.key}`, () => {
      const field = camelName(c.key);
      const cfg = file(`${c.key}: ${c.file}\n`);
      const env = { [`WALNATS_${c.key.toUpperCase()}`]: c.env };
      const flag = [`--${c.key.replace(/_/g, '-')}=${c.flag}`];
      const get = (o: LoadConfigOptions) => (load(o).config as unknown as Record<string, unknown>)[field];
      expect(get({})).toEqual(c.expect[0]);
      expect(get({ argv: ['--config', cfg] })).toEqual(c.expect[1]);
      expect(get({ argv: ['--config', cfg], env })).toEqual(c.expect[2]);
      expect(get({ argv: ['--config', cfg, ...flag], env })).toEqual(c.expect[3]);
    });
  }

  it('takes the config file location from WALNATS_CONFIG, relative to cwd', () => {
    file('slot: s1\n', 'rel.yaml');
    expect(load({ env: { WALNATS_CONFIG: 'rel.yaml' } }).config.slot).toBe('s1');
  });

  it('records where each value came from', () => {
    const cfg = file('slot: s1\npublication: p1\n');
    const { sources } = load({ argv: ['--config', cfg, '--slot', 's2'], env: { WALNATS_PREFIX: 'x' } });
    expect(sources.slot).toEqual({ kind: 'flag', name: '--slot' });
    expect(sources.prefix).toEqual({ kind: 'env', name: 'WALNATS_PREFIX' });
    expect(sources.publication).toEqual({ kind: 'file', file: cfg, line: 2 });
    expect(sources.http_port).toEqual({ kind: 'default' });
  });
});

describe('flags', () => {
  it('accepts --key value, --key=value, --bool, --no-bool, negative numbers', () => {
    const { config } = load({
      argv: ['config', '--slot', 's', '--publication=p', '--transaction-markers', '--no-create-publication', '--stream-max-bytes', '-1'],
    });
    expect(config).toMatchObject({ slot: 's', publication: 'p', transactionMarkers: true, createPublication: false, streamMaxBytes: -1 });
  });

  it('splits flags from positionals using the table', () => {
    expect(splitFlags(['snapshot', '--log-pretty', 'public.a', '--slot', 's', 'public.b'])).toEqual({
      flags: [
        { name: '--log-pretty', value: undefined },
        { name: '--slot', value: 's' },
      ],
      positionals: ['snapshot', 'public.a', 'public.b'],
    });
  });

  it('lets a repeated flag win with its last value', () => {
    expect(load({ argv: ['--slot', 'a', '--slot', 'b'] }).config.slot).toBe('b');
  });
});

describe('values', () => {
  it('parses durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250')).toBe(250);
    expect(() => parseDuration('10 parsecs')).toThrow(/duration/);
    expect(() => parseDuration('')).toThrow(/duration/);
  });

  it('splits the NATS seed list and trims items', () => {
    expect(load({ env: { WALNATS_NATS_URL: 'nats://a:4222, nats://b:4222,,' } }).config.natsUrl).toEqual(['nats://a:4222', 'nats://b:4222']);
  });

  it('accepts YAML-typed values in the file', () => {
    const cfg = file('http_port: 9000\ncreate_slot: no\nstream_max_age: 3600000\nnats_url:\n  - nats://a:1\n  - nats://b:2\n');
    expect(load({ argv: ['--config', cfg] }).config).toMatchObject({ httpPort: 9000, createSlot: false, streamMaxAge: 3_600_000, natsUrl: ['nats://a:1', 'nats://b:2'] });
  });

  it('resolves paths against the config file directory, or cwd for flags and env', () => {
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    const cfg = file('permissions_file: perms.yaml\n', 'sub/paths.yaml');
    expect(load({ argv: ['--config', cfg] }).config.permissionsFile).toBe(path.join(dir, 'sub', 'perms.yaml'));
    expect(load({ env: { WALNATS_VALIDATORS_DIR: 'v' } }).config.validatorsDir).toBe(path.join(dir, 'v'));
  });

  it('treats an empty file and `key:` with no value as unset', () => {
    expect(load({ argv: ['--config', file('')] }).config.slot).toBe('walnats');
    expect(load({ argv: ['--config', file('slot:\n')] }).config.slot).toBe('walnats');
  });
});

describe('secrets from files (*_FILE)', () => {
  const secret = file('s3cret\n', 'secret.txt');

  it('reads WALNATS_X_FILE, --x-file and x_file, trimming the trailing newline', () => {
    expect(load({ env: { WALNATS_ADMIN_SECRET_FILE: secret } }).config.adminSecret).toBe('s3cret');
    expect(load({ argv: ['--jwt-secret-file', secret] }).config.jwtSecret).toBe('s3cret');
    const cfg = file('nats_token_file: secret.txt\n');
    expect(load({ argv: ['--config', cfg] }).config.natsToken).toBe('s3cret');
  });

  it('works for pg_url, and the value is then parsed as usual', () => {
    const url = file('postgres://u:pw@db.example:5432/shop\n', 'pgurl.txt');
    const port = file('9100\n', 'port.txt');
    const { config } = load({ argv: ['cdc'], env: { WALNATS_PG_URL_FILE: url, WALNATS_HTTP_PORT_FILE: port } });
    expect(config.pgUrl).toBe('postgres://u:pw@db.example:5432/shop');
    expect(config.httpPort).toBe(9100);
  });

  it('follows precedence: a flag beats an env _FILE', () => {
    expect(load({ argv: ['--admin-secret', 'flag'], env: { WALNATS_ADMIN_SECRET_FILE: secret } }).config.adminSecret).toBe('flag');
  });

  it('rejects X and X_FILE set together in one place, and unreadable files', () => {
    const p = problems(() =>
      load({ env: { WALNATS_ADMIN_SECRET: 'a', WALNATS_ADMIN_SECRET_FILE: secret, WALNATS_JWT_SECRET_FILE: path.join(dir, 'missing') } }),
    );
    expect(p.map((x) => x.key).sort()).toEqual(['admin_secret', 'jwt_secret']);
    expect(p.find((x) => x.key === 'jwt_secret')!.message).toMatch(/cannot read .*missing/);
    expect(p.find((x) => x.key === 'jwt_secret')!.source).toBe('env WALNATS_JWT_SECRET_FILE');
  });
});

describe('errors', () => {
  it('reports every problem at once: 3 in the file and 1 in env → 4, each with key and source', () => {
    const cfg = file('pg_url: postgres://x@h/db\nhttp_port: eighty\nlog_level: loud\nslott: s\n');
    const p = problems(() => load({ argv: ['cdc', '--config', cfg], env: { WALNATS_PUBLISH_WINDOW: 'many' } }));
    expect(p).toHaveLength(4);
    expect(p).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: 'http_port', source: `file ${cfg} line 2`, message: expect.stringMatching(/integer/) }),
        expect.objectContaining({ key: 'log_level', source: `file ${cfg} line 3`, message: expect.stringMatching(/one of trace/) }),
        expect.objectContaining({ key: 'slott', source: `file ${cfg} line 4`, message: expect.stringMatching(/unknown setting \(did you mean slot\?\)/) }),
        expect.objectContaining({ key: 'publish_window', source: 'env WALNATS_PUBLISH_WINDOW' }),
      ]),
    );
    // The message lists all of them too, for stderr.
    let message = '';
    try {
      load({ argv: ['cdc', '--config', cfg], env: { WALNATS_PUBLISH_WINDOW: 'many' } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/4 problems/);
    for (const k of ['http_port', 'log_level', 'slott', 'publish_window']) expect(message).toContain(k);
  });

  it('reports unknown keys in file, env (WALNATS_* only) and flags, with suggestions', () => {
    const cfg = file('publicaton: p\n');
    const p = problems(() => load({ argv: ['--config', cfg, '--slott', 'x', '--nope'], env: { WALNATS_NATS_ULR: 'x', PATH: '/bin', WALNATS_PG_BIN: '/x' } }));
    expect(p.map((x) => [x.key, x.message])).toEqual(
      expect.arrayContaining([
        ['publicaton', 'unknown setting (did you mean publication?)'],
        ['--slott', 'unknown flag (did you mean --slot?)'],
        ['--nope', 'unknown flag'],
        ['WALNATS_NATS_ULR', 'unknown setting (did you mean WALNATS_NATS_URL?)'],
      ]),
    );
    expect(p).toHaveLength(4);
    // The message names where a value came from, but not twice for a name that is its own source.
    let message = '';
    try {
      load({ argv: ['--slott', 'x'], env: { WALNATS_HTTP_PORT: 'abc', WALNATS_NATS_ULR: 'x' } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('  - --slott: unknown flag (did you mean --slot?)\n');
    expect(message).toContain('  - WALNATS_NATS_ULR: unknown setting (did you mean WALNATS_NATS_URL?)\n');
    expect(message).toMatch(/ {2}- http_port: expected an integer, got "abc" \(env WALNATS_HTTP_PORT\)/);
  });

  it('reports missing required settings per command', () => {
    const p = problems(() => load({ argv: ['cdc'] }));
    expect(p).toEqual([expect.objectContaining({ key: 'pg_url', message: expect.stringMatching(/WALNATS_PG_URL.*--pg-url/) })]);
    expect(() => load({ argv: ['demo'] })).not.toThrow();
    expect(() => load({ argv: ['config'] })).not.toThrow();
  });

  it('reports YAML syntax errors with the line, and an unreadable config file', () => {
    const bad = file('slot: a\ntables: [x\nprefix: p\n');
    const p = problems(() => load({ argv: ['--config', bad] }));
    expect(p[0].message).toMatch(/YAML syntax error/);
    expect(p[0].source).toMatch(new RegExp(`file ${bad} line \\d`));
    const missing = problems(() => load({ env: { WALNATS_CONFIG: path.join(dir, 'nope.yaml') } }));
    expect(missing).toEqual([expect.objectContaining({ key: 'config', source: 'env WALNATS_CONFIG', message: expect.stringMatching(/cannot read/) })]);
  });

  it('rejects a config file that is not a mapping, and `config` inside the file', () => {
    expect(problems(() => load({ argv: ['--config', file('- a\n- b\n')] }))[0].message).toMatch(/mapping/);
    expect(problems(() => load({ argv: ['--config', file('config: other.yaml\n')] }))[0].message).toMatch(/cannot be set inside the config file/);
  });

  it('checks bounds, enums, list values and shapes', () => {
    const p = problems(() =>
      load({
        argv: ['--http-port', '70000', '--stream-replicas=0', '--jwt-algorithms', 'HS256,XX999', '--tables', 'orders', '--prefix', 'a b', '--no-slot'],
        env: { WALNATS_GATEWAY_INTROSPECTION: 'maybe', WALNATS_STREAM_NAME: 'a.b' },
      }),
    );
    expect(p.map((x) => x.key).sort()).toEqual(
      ['gateway_introspection', 'http_port', 'jwt_algorithms', 'prefix', 'slot', 'stream_name', 'stream_replicas', 'tables'].sort(),
    );
  });

  it('reports settings that contradict each other', () => {
    const p = problems(() => load({ env: { WALNATS_JWT_SECRET: 'a', WALNATS_JWT_JWKS_URL: 'https://x', WALNATS_NATS_TLS_CERT: 'c', WALNATS_NATS_PASSWORD: 'p' } }));
    expect(p.map((x) => x.key).sort()).toEqual(['jwt_secret, jwt_jwks_url', 'nats_password', 'nats_tls_cert']);
  });
});

describe('redaction', () => {
  it('hides secrets, keeps the host of URLs', () => {
    const loaded = load({
      argv: ['--pg-url', 'postgres://app:hunter2@db:5432/shop', '--admin-secret', 'topsecret', '--nats-url', 'nats://u:natspw@n1:4222'],
    });
    const r = redactConfig(loaded.config);
    expect(r.pg_url).toBe('postgres://app:[redacted]@db:5432/shop');
    expect(r.admin_secret).toBe('[redacted]');
    expect(r.nats_url).toEqual(['nats://u:[redacted]@n1:4222']);
    const text = formatConfig(loaded);
    expect(text).not.toMatch(/hunter2|topsecret|natspw/);
    expect(text).toContain('admin_secret: "[redacted]"   # flag --admin-secret');
    expect(text).toContain('status_interval: 1s   # default');
  });

  it('formatConfig output is a config file that loads back to the same values (secrets aside)', () => {
    const loaded = load({ argv: ['--slot', 'x', '--tables', 'public.a,public.b', '--stream-max-age', '90m'] });
    const back = load({ argv: ['--config', file(formatConfig(loaded))] });
    expect(back.config).toEqual({ ...loaded.config, config: back.config.config });
  });
});
