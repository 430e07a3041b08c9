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

describe('formatPretty', () => {
  it('passes through lines that are not JSON', () => {
    expect(formatPretty('plain')).toBe('plain\n');
  });
});
