/**
 * Postgres timestamps on the replication wire are int64 microseconds since
 * 2000-01-01 00:00:00 UTC. They stay bigint inside the decoder; these helpers convert at the
 * edges (e.g. `ts_ms` in the event envelope).
 */

/** 2000-01-01T00:00:00Z in microseconds since the Unix epoch. */
export const PG_EPOCH_UNIX_US = 946_684_800_000_000n;

/** Microseconds since 2000-01-01 → milliseconds since 1970-01-01 (floored). */
export function pgTimeToUnixMs(us: bigint): number {
  const unixUs = us + PG_EPOCH_UNIX_US;
  // Floor division for negative values too (BigInt division truncates toward zero).
  const ms = unixUs / 1000n - (unixUs % 1000n < 0n ? 1n : 0n);
  return Number(ms);
}

/** Milliseconds since 1970-01-01 → microseconds since 2000-01-01. */
export function unixMsToPgTime(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * 1000n - PG_EPOCH_UNIX_US;
}
