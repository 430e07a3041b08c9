import { describe, expect, it } from 'vitest';
import { RateLimitError, RateLimiter } from '../../src/gateway/ratelimit.ts';
import { resolveRateLimit, validatePermissions } from '../../src/gateway/permissions.ts';

describe('gateway rate limiter (token bucket)', () => {
  it('grants a burst, then one token per 1/rate seconds', () => {
    let now = 0;
    const rl = new RateLimiter(() => now);
    const lim = { rate: 2 }; // burst defaults to one second's worth: 2
    expect(rl.take('user', lim)).toBe(0);
    expect(rl.take('user', lim)).toBe(0);
    expect(rl.take('user', lim)).toBe(500); // empty: the next token in 500 ms
    now = 250;
    expect(rl.take('user', lim)).toBe(250);
    now = 500;
    expect(rl.take('user', lim)).toBe(0);
    expect(rl.take('user', lim)).toBe(500);
    now = 60_000; // refilled, capped at the burst
    expect(rl.take('user', lim)).toBe(0);
    expect(rl.take('user', lim)).toBe(0);
    expect(rl.take('user', lim)).toBeGreaterThan(0);
  });

  it('keeps one bucket per key; rate 0 is unlimited; explicit bursts; fractional rates', () => {
    let now = 0;
    const rl = new RateLimiter(() => now);
    expect(rl.take('a', { rate: 1 })).toBe(0);
    expect(rl.take('a', { rate: 1 })).toBe(1000);
    expect(rl.take('b', { rate: 1 })).toBe(0);
    for (let i = 0; i < 100; i++) expect(rl.take('c', { rate: 0 })).toBe(0);
    for (let i = 0; i < 5; i++) expect(rl.take('d', { rate: 1, burst: 5 })).toBe(0);
    expect(rl.take('d', { rate: 1, burst: 5 })).toBe(1000);
    expect(rl.take('e', { rate: 0.5 })).toBe(0); // burst at least 1
    expect(rl.take('e', { rate: 0.5 })).toBe(2000);
    now = 2000;
    expect(rl.take('e', { rate: 0.5 })).toBe(0);
  });

  it('the error says who, how much and when to retry, with HTTP 429', () => {
    const e = new RateLimitError('user', { rate: 5 }, 180);
    expect(e.message).toBe('rate limit exceeded for role user: 5 operations per second; retry in 180 ms');
    expect(e.extensions).toEqual({ code: 'rate-limited', retry_after_ms: 180, http: { status: 429, headers: { 'retry-after': '1' } } });
    expect(new RateLimitError('anon', { rate: 0.01 }, 99_500).message).toMatch(/retry in 100 s$/);
  });

  it('permissions: rate_limit as a number or { per_second, burst, by }, validated', () => {
    expect(validatePermissions({ roles: { a: { rate_limit: 3 }, b: { rate_limit: { per_second: 1, burst: 10, by: 'X-Hasura-User-Id' } } } })).toEqual([]);
    expect(validatePermissions({ roles: { a: { rate_limit: -1 }, b: { rate_limit: { per_second: 'x', burst: 0, by: 'user_id', extra: 1 } }, c: { rate_limit: 'fast' } } })).toEqual([
      'roles.a.rate_limit: must be a number >= 0 (operations per second; 0 = unlimited)',
      'roles.b.rate_limit.extra: unknown key',
      'roles.b.rate_limit.per_second: must be a number >= 0',
      'roles.b.rate_limit.burst: must be a number >= 1',
      'roles.b.rate_limit.by: must name a session variable (X-Hasura-* or X-Walnats-*)',
      'roles.c.rate_limit: must be a number or { per_second, burst, by }',
    ]);
    expect(resolveRateLimit(undefined, 7)).toEqual({ rate: 7 });
    expect(resolveRateLimit(0, 7)).toEqual({ rate: 0 });
    expect(resolveRateLimit({ per_second: 2, burst: 4, by: 'X-Hasura-User-Id' }, 7)).toEqual({ rate: 2, burst: 4, by: 'x-walnats-user-id' });
  });
});
