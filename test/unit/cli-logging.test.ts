// Logging as the CLI sets it up (src/log.ts): JSON lines or one pretty line, secrets redacted.
import { describe, expect, it } from 'vitest';
import { createLogger, formatPretty } from '../../src/log.ts';

function capture() {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}

describe('createLogger', () => {
  it('writes JSON lines with level names, component from child loggers', () => {
    const c = capture();
    const log = createLogger({ logLevel: 'info', logPretty: false }, { destination: c.destination });
    log.child({ component: 'cdc' }).info({ slot: 'walnats' }, 'streaming');
    log.debug('hidden');
    expect(c.lines).toHaveLength(1);
    expect(JSON.parse(c.lines[0])).toMatchObject({ level: 'info', component: 'cdc', slot: 'walnats', msg: 'streaming' });
  });

  it('never logs secrets, keeps URL hosts', () => {
    const c = capture();
    const log = createLogger({ logLevel: 'info', logPretty: false }, { destination: c.destination });
    log.info(
      {
        config: { adminSecret: 'topsecret', pgUrl: 'postgres://app:hunter2@db/shop', natsUrl: ['nats://u:natspw@n:4222', 'nats://n2:4222'], natsToken: 'tok' },
        jwt_secret: 'jwtsecret',
        headers: { authorization: 'Bearer abc', 'x-walnats-admin-secret': 'adm' },
      },
      'config',
    );
    const line = c.lines[0];
    expect(line).not.toMatch(/topsecret|hunter2|natspw|"tok"|jwtsecret|Bearer abc|"adm"/);
    const entry = JSON.parse(line);
    expect(entry.config.pgUrl).toBe('postgres://app:[redacted]@db/shop');
    expect(entry.config.natsUrl).toEqual(['nats://u:[redacted]@n:4222', 'nats://n2:4222']);
  });

  it('writes one human line per entry in pretty mode', () => {
    const c = capture();
    const log = createLogger({ logLevel: 'debug', logPretty: true }, { destination: c.destination, color: false });
    log.child({ component: 'gateway' }).warn({ port: 8080, path: '/a b' }, 'listening');
    log.error({ err: new Error('outer', { cause: new Error('inner') }) }, 'failed');
    expect(c.lines[0]).toMatch(/^\d\d:\d\d:\d\d WARN  listening component=gateway port=8080 path="\/a b"\n$/);
    expect(c.lines[1]).toMatch(/^\d\d:\d\d:\d\d ERROR failed err="outer: inner"\n$/);
  });
});

describe('errors in log lines', () => {
  it('keep type, message, stack, plain fields and causes, and name attached objects instead of writing them out', () => {
    const c = capture();
    const log = createLogger({ logLevel: 'info', logPretty: false }, { destination: c.destination });
    // What pg's pool emits for an idle connection killed by the server: a DatabaseError with
    // the client (connection, socket, type parsers) attached.
    class DatabaseError extends Error {}
    class Client {
      connectionParameters = { host: '127.0.0.1', port: 5432, user: 'app', database: 'shop' };
      socket = { buffered: 'x'.repeat(5000) };
    }
    const err = Object.assign(new DatabaseError('terminating connection due to administrator command', { cause: new Error('socket closed') }), {
      severity: 'FATAL', code: '57P01', line: '3211', position: 12, nested: [1, 2], client: new Client(), extra: { token: 'hunter2' },
    });
    log.warn({ err }, 'idle Postgres connection failed');
    expect(c.lines[0].length).toBeLessThan(2500);
    expect(c.lines[0]).not.toMatch(/hunter2|xxxx|127\.0\.0\.1/);
    const entry = JSON.parse(c.lines[0]);
    expect(entry.err).toMatchObject({
      type: 'DatabaseError', message: 'terminating connection due to administrator command',
      severity: 'FATAL', code: '57P01', line: '3211', position: 12, nested: [1, 2], client: '[Client]', extra: '[object]',
      cause: { type: 'Error', message: 'socket closed' },
    });
    expect(entry.err.stack).toMatch(/^Error: terminating connection/);
  });

  it('keep a GraphQL error\'s extensions (its code), plain values only', () => {
    const c = capture();
    const log = createLogger({ logLevel: 'info', logPretty: false }, { destination: c.destination });
    const err = Object.assign(new Error('nope'), { extensions: { code: 'permission-error', http: { status: 403 }, n: 1 }, path: ['orders', 0] });
    log.warn({ err }, 'x');
    const entry = JSON.parse(c.lines[0]);
    expect(entry.err.extensions).toEqual({ code: 'permission-error', n: 1 });
    expect(entry.err.path).toEqual(['orders', 0]);
  });

  it('follow AggregateError errors and stop at cycles', () => {
    const c = capture();
    const log = createLogger({ logLevel: 'info', logPretty: false }, { destination: c.destination });
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b; // a cycle
    log.error({ err: new AggregateError([a, new Error('c')], 'all failed') }, 'x');
    const entry = JSON.parse(c.lines[0]);
    expect(entry.err.type).toBe('AggregateError');
    expect(entry.err.errors.map((e: { message: string }) => e.message)).toEqual(['a', 'c']);
    expect(entry.err.errors[0].cause.message).toBe('b');
  });
});

describe('formatPretty', () => {
  it('passes through lines that are not JSON', () => {
    expect(formatPretty('plain')).toBe('plain\n');
  });
});
