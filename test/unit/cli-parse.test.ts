import { describe, expect, it } from 'vitest';
import { UsageError, describeError, helpText, main, parseCommandLine, type CliIo } from '../../src/cli.ts';
import { CONFIG_SETTINGS, ConfigError, flagName } from '../../src/config.ts';

describe('parseCommandLine', () => {
  it('parses a command with setting flags in every form', () => {
    expect(parseCommandLine(['cdc', '--pg-url', 'postgres://h/db', '--http-port=0', '--no-create-slot', '--log-pretty'])).toEqual({
      kind: 'run',
      command: 'cdc',
      args: [],
      json: false,
      flags: [
        { name: '--pg-url', value: 'postgres://h/db' },
        { name: '--http-port', value: '0' },
        { name: '--no-create-slot', value: undefined },
        { name: '--log-pretty', value: undefined },
      ],
    });
  });

  it('allows flags before the command', () => {
    const p = parseCommandLine(['--config', 'w.yaml', 'gateway']);
    expect(p).toMatchObject({ kind: 'run', command: 'gateway', flags: [{ name: '--config', value: 'w.yaml' }] });
  });

  it('takes the tables of snapshot as arguments, and requires one', () => {
    expect(parseCommandLine(['snapshot', 'public.orders', '--slot', 's', 'public.items'])).toMatchObject({
      command: 'snapshot',
      args: ['public.orders', 'public.items'],
      flags: [{ name: '--slot', value: 's' }],
    });
    expect(() => parseCommandLine(['snapshot'])).toThrow(UsageError);
  });

  it('knows --json for status and config only', () => {
    expect(parseCommandLine(['status', '--json'])).toMatchObject({ command: 'status', json: true, flags: [] });
    expect(parseCommandLine(['config', '--json'])).toMatchObject({ command: 'config', json: true });
    expect(() => parseCommandLine(['cdc', '--json'])).toThrow(/--json is only for/);
  });

  it('answers --help, -h, help <cmd>, --version, -V', () => {
    expect(parseCommandLine(['--help'])).toEqual({ kind: 'help', command: undefined });
    expect(parseCommandLine(['cdc', '-h'])).toEqual({ kind: 'help', command: 'cdc' });
    expect(parseCommandLine(['help', 'gateway'])).toEqual({ kind: 'help', command: 'gateway' });
    expect(parseCommandLine(['--version'])).toEqual({ kind: 'version' });
    expect(parseCommandLine(['-V'])).toEqual({ kind: 'version' });
  });

  it('rejects bad usage', () => {
    expect(() => parseCommandLine([])).toThrow(/no command/);
    expect(() => parseCommandLine(['cdcc'])).toThrow(/unknown command "cdcc"/);
    expect(() => parseCommandLine(['cdc', 'extra'])).toThrow(/takes no arguments/);
    expect(() => parseCommandLine(['cdc', '--create-slot', 'false'])).toThrow(/--no-flag/);
    expect(() => parseCommandLine(['cdc', '-x'])).toThrow(/unknown option -x/);
  });

  it('leaves unknown long flags to loadConfig, which reports them with the others', () => {
    expect(parseCommandLine(['cdc', '--bogus', 'v'])).toMatchObject({ flags: [{ name: '--bogus', value: 'v' }] });
  });
});

describe('helpText', () => {
  it('lists every setting of a command as a flag', () => {
    const text = helpText('gateway');
    for (const s of CONFIG_SETTINGS.filter((s) => s.commands.includes('gateway'))) expect(text).toContain(flagName(s.key));
    expect(text).not.toContain('--publish-window');
  });
});

function fakeIo(env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env,
    cwd: process.cwd(),
    stdoutIsTTY: false,
    onSignal: () => () => {},
    exit: (code: number) => {
      throw new Error(`exit ${code}`);
    },
  };
  return { io, out: () => out.join(''), err: () => err.join('') };
}

describe('main', () => {
  it('exits 2 with a message and usage on bad usage', async () => {
    const f = fakeIo();
    expect(await main(['nope'], f.io)).toBe(2);
    expect(f.err()).toMatch(/unknown command "nope"[\s\S]*usage: walnats/);
  });

  it('exits 2 listing every configuration error on stderr, before connecting', async () => {
    const f = fakeIo({ WALNATS_HTTP_PORT: 'x' });
    expect(await main(['cdc', '--bogus=1', '--log-level', 'loud'], f.io)).toBe(2);
    expect(f.err()).toMatch(/4 problems/);
    for (const k of ['--bogus', 'http_port', 'log_level', 'pg_url']) expect(f.err()).toContain(k);
  });

  it('exits 2 for configuration found wrong only when it is used (a validator that does not load), 1 for other failures', async () => {
    const bad = fakeIo({ WALNATS_PG_URL: 'postgres://h/db', WALNATS_NATS_URL: 'nats://n:4222' });
    bad.io.loadMain = async () => ({
      runGateway: async () => {
        throw new ConfigError([{ key: 'validators_dir', source: 'file /v/orders.mjs', message: "cannot load it (line 3, column 16): Unexpected token 'throw'" }]);
      },
    });
    expect(await main(['gateway'], bad.io)).toBe(2);
    expect(bad.err()).toContain("validators_dir: cannot load it (line 3, column 16): Unexpected token 'throw' (file /v/orders.mjs)");
    const other = fakeIo({ WALNATS_PG_URL: 'postgres://h/db', WALNATS_NATS_URL: 'nats://n:4222' });
    other.io.loadMain = async () => ({ runGateway: async () => { throw new Error('connection refused'); } });
    expect(await main(['gateway'], other.io)).toBe(1);
  });

  it('prints the effective configuration with secrets redacted', async () => {
    const f = fakeIo({ WALNATS_ADMIN_SECRET: 'topsecret', WALNATS_PG_URL: 'postgres://u:pw@h/db' });
    expect(await main(['config', '--slot', 's1'], f.io)).toBe(0);
    expect(f.out()).toContain('slot: s1   # flag --slot');
    expect(f.out()).toContain('pg_url: "postgres://u:[redacted]@h/db"');
    expect(f.out()).not.toMatch(/topsecret|:pw@/);
    const j = fakeIo({ WALNATS_ADMIN_SECRET: 'topsecret' });
    expect(await main(['config', '--json'], j.io)).toBe(0);
    expect(JSON.parse(j.out())).toMatchObject({ admin_secret: '[redacted]', http_port: 8080 });
  });

  it('prints the version and help', async () => {
    const v = fakeIo();
    expect(await main(['--version'], v.io)).toBe(0);
    expect(v.out()).toMatch(/^walnats \d+\.\d+\.\d+/);
    const h = fakeIo();
    expect(await main(['status', '--help'], h.io)).toBe(0);
    expect(h.out()).toContain('usage: walnats status');
  });

  it('runs a daemon command until a signal stops it, then exits 0', async () => {
    const f = fakeIo({ WALNATS_PG_URL: 'postgres://h/db' });
    let signal: ((s: NodeJS.Signals) => void) | undefined;
    f.io.onSignal = (h) => ((signal = h), () => (signal = undefined));
    let stops = 0;
    let started: ((v?: unknown) => void) | undefined;
    const running = new Promise((r) => (started = r));
    f.io.loadMain = async () => ({
      runCdc: async (config: { pgUrl: string }) => {
        expect(config.pgUrl).toBe('postgres://h/db');
        let finish!: () => void;
        const done = new Promise<void>((r) => (finish = r));
        started!();
        return { done, stop: async () => { stops++; finish(); } };
      },
    });
    const code = main(['cdc'], f.io);
    await running;
    await new Promise((r) => setImmediate(r));
    signal!('SIGTERM');
    expect(await code).toBe(0);
    expect(stops).toBe(1);
    expect(signal).toBeUndefined(); // handlers removed
    expect(f.err()).toMatch(/SIGTERM received/);
  });

  it('forces the exit on a second signal', async () => {
    const f = fakeIo({ WALNATS_PG_URL: 'postgres://h/db' });
    let signal: ((s: NodeJS.Signals) => void) | undefined;
    f.io.onSignal = (h) => ((signal = h), () => {});
    let started: ((v?: unknown) => void) | undefined;
    const running = new Promise((r) => (started = r));
    f.io.loadMain = async () => ({
      runGateway: async () => {
        started!();
        // A drain that never finishes.
        return { done: new Promise<void>(() => {}), stop: () => new Promise<void>(() => {}) };
      },
    });
    void main(['gateway'], f.io);
    await running;
    await new Promise((r) => setImmediate(r));
    signal!('SIGINT');
    expect(() => signal!('SIGINT')).toThrow('exit 130');
  });

  it('exits 1 with a clear message when an entry point is missing or fails', async () => {
    const f = fakeIo();
    f.io.loadMain = async () => ({});
    expect(await main(['demo'], f.io)).toBe(1);
    expect(f.err()).toMatch(/walnats demo: not available in this build yet/);
    const g = fakeIo({ WALNATS_PG_URL: 'postgres://h/db' });
    g.io.loadMain = async () => ({ runAll: async () => { throw new Error('cannot connect', { cause: new Error('ECONNREFUSED') }); } });
    expect(await main(['all'], g.io)).toBe(1);
    expect(g.err()).toMatch(/walnats all: cannot connect\n  caused by: ECONNREFUSED/);
  });

  it('passes the tables of snapshot to requestSnapshot', async () => {
    const f = fakeIo({ WALNATS_PG_URL: 'postgres://h/db' });
    let got: unknown;
    f.io.loadMain = async () => ({ requestSnapshot: async (_c: unknown, tables: string[]) => { got = tables; return { requested: tables.length }; } });
    expect(await main(['snapshot', 'public.a', 'public.b'], f.io)).toBe(0);
    expect(got).toEqual(['public.a', 'public.b']);
    expect(JSON.parse(f.out())).toEqual({ requested: 2 });
  });
});

describe('describeError', () => {
  it.each([
    ['a wrapper quoting its cause says it once', new Error('cannot listen on 0.0.0.0:8080: listen EADDRINUSE', { cause: new Error('listen EADDRINUSE') }), 'cannot listen on 0.0.0.0:8080: listen EADDRINUSE'],
    ['a cause with news of its own is shown', new Error('publishing failed', { cause: new Error('wrong last sequence: 4') }), 'publishing failed\n  caused by: wrong last sequence: 4'],
    ['a chain keeps what each level adds', new Error('a: b', { cause: new Error('b', { cause: new Error('c') }) }), 'a: b\n  caused by: c'],
    ['non-errors', 'plain text', 'plain text'],
  ])('%s', (_what, err, text) => {
    expect(describeError(err)).toBe(text);
  });
});
