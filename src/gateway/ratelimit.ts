/**
 * Rate limits per role: a token bucket per key (the role) that holds up to `burst` tokens
 * and refills at `rate` tokens per second. Every GraphQL operation a client starts takes
 * one: an HTTP request, or a `subscribe` on a WebSocket (events delivered afterwards are
 * not counted).
 */
import { GraphQLError } from 'graphql/index.js';

export interface Limit {
  /** Tokens per second; 0 or less = unlimited. */
  rate: number;
  /** Bucket size; default max(1, rate). */
  burst?: number;
}

export class RateLimitError extends GraphQLError {
  constructor(role: string, limit: Limit, public readonly retryAfterMs: number) {
    const secs = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(`rate limit exceeded for role ${role}: ${limit.rate} operations per second; retry in ${retryAfterMs < 1000 ? `${Math.ceil(retryAfterMs)} ms` : `${secs} s`}`, {
      extensions: { code: 'rate-limited', retry_after_ms: Math.ceil(retryAfterMs), http: { status: 429, headers: { 'retry-after': String(secs) } } },
    });
  }
}

interface Bucket {
  tokens: number;
  at: number;
  rate: number;
  burst: number;
}

export class RateLimiter {
  private buckets = new Map<string, Bucket>();
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes one token from `key`'s bucket: 0 when granted, else the ms until one is there. */
  take(key: string, limit: Limit): number {
    if (!(limit.rate > 0)) return 0;
    const burst = Math.max(1, limit.burst ?? limit.rate);
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= 10_000) this.sweep(t); // bounded, should keys ever come from clients
      this.buckets.set(key, (b = { tokens: burst, at: t, rate: limit.rate, burst }));
    } else {
      b.rate = limit.rate;
      b.burst = burst;
      b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * limit.rate);
      b.at = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return ((1 - b.tokens) / limit.rate) * 1000;
  }

  /** Drops buckets that have refilled (they are the same as new ones). */
  private sweep(t: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + ((t - b.at) / 1000) * b.rate >= b.burst) this.buckets.delete(k);
  }
}
