/** What the daemon reports to metrics; main.ts binds it to the Prometheus registry. */
import type { Change } from '../decoder/types.ts';

export interface CdcMetrics {
  reconnects: { inc(): void };
  transactions: { inc(): void };
  confirmedLsn: { set(v: number): void };
  inFlight: { set(v: number): void };
  /** Seconds from a transaction's last event sent to its acknowledgement. */
  publishLatency?: { observe(seconds: number): void };
  /** 1 while this instance holds the leader lock, 0 as a standby. */
  active?: { set(v: number): void };
  /** One published event; `commitMs` is its commit time for the commit-to-publish lag. */
  countEvent(change: Change, commitMs: number): void;
}
