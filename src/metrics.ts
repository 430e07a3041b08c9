/**
 * Prometheus metrics (DESIGN §6). One Registry per process (not prom-client's global one, so
 * tests and `walnats all` can build several without name clashes), with typed handles for
 * every `walnats_*` metric plus the default process/Node.js metrics.
 *
 * Per-event cost matters on the CDC path: `countEvent` adds to a per-table, per-op tally (two
 * Map lookups and an addition), folded into walnats_events_total whenever it is read.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type EventOp = 'insert' | 'update' | 'delete' | 'truncate' | 'read' | 'message' | 'begin' | 'commit' | 'schema';
export type ReconnectTarget = 'postgres' | 'nats';
export type RequestKind = 'query' | 'mutation' | 'subscription';

export interface CdcMetrics {
  /** walnats_events_total{table,op}: events published (acknowledged by JetStream). */
  readonly events: Counter<'table' | 'op'>;
  /** Increments walnats_events_total for `table` (`schema.table`) and `op`; cached per pair. */
  countEvent(table: string, op: EventOp | string, n?: number): void;
  /** walnats_publish_latency_seconds: publish call → JetStream acknowledgement. */
  readonly publishLatency: Histogram;
  /** walnats_commit_to_publish_lag_seconds: commit timestamp in Postgres → acknowledgement. */
  readonly commitToPublishLag: Histogram;
  /** walnats_slot_lag_bytes: pg_current_wal_lsn() − confirmed flush LSN. */
  readonly slotLagBytes: Gauge;
  readonly slotLagSeconds: Gauge;
  /** walnats_confirmed_lsn: the flush LSN last confirmed to Postgres, as a number (exact below 2^53). */
  readonly confirmedLsn: Gauge;
  /** Sets walnats_confirmed_lsn from a bigint LSN. */
  setConfirmedLsn(lsn: bigint): void;
  /** walnats_in_flight: events published and not yet acknowledged. */
  readonly inFlight: Gauge;
  /** walnats_reconnects_total{target}. */
  readonly reconnects: Counter<'target'>;
  countReconnect(target: ReconnectTarget): void;
  /** walnats_transactions_total: transactions whose events are all acknowledged. */
  readonly transactions: Counter;
  /** walnats_active: 1 while this process holds the slot and streams. */
  readonly active: Gauge;
  /** walnats_snapshot_rows_total{table}: rows published as snapshot/backfill reads. */
  readonly snapshotRows: Counter<'table'>;
  /** walnats_snapshot_rows_estimated{table}: estimated rows (pg_class.reltuples) of a table being snapshotted. */
  readonly snapshotRowsEstimated: Gauge<'table'>;
}

export interface GatewayMetrics {
  /** walnats_gateway_subscriptions: open GraphQL subscriptions. */
  readonly subscriptions: Gauge;
  /** walnats_gateway_deliveries_total: subscription payloads sent to clients. */
  readonly deliveries: Counter;
  /** walnats_gateway_resolver_latency_seconds: root resolver duration. */
  readonly resolverLatency: Histogram;
  /** walnats_gateway_requests_total{kind}. */
  readonly requests: Counter<'kind'>;
  countRequest(kind: RequestKind): void;
}

export interface Metrics {
  readonly registry: Registry;
  /** walnats_up: 1 while the process runs (constant; absent = the scrape failed). */
  readonly up: Gauge;
  readonly cdc: CdcMetrics;
  readonly gateway: GatewayMetrics;
  /** The exposition text for /metrics. */
  render(): Promise<string>;
  readonly contentType: string;
}

// Publishing is sub-millisecond to seconds; commit-to-publish lag spans ms to minutes (backlogs).
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const RESOLVER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface CreateMetricsOptions {
  /** Default process_* / nodejs_* metrics; on by default. */
  defaultMetrics?: boolean;
}

export function createMetrics(opts: CreateMetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const up = new Gauge({ name: 'walnats_up', help: '1 while the walnats process runs.', registers });
  up.set(1);

  // countEvent runs once per published event: it adds to a plain per-table, per-op tally,
  // and the tallies go into the counter when it is read (prom-client calls collect() before
  // every read: a scrape, render(), get()), so every reader sees exact counts.
  // prom-client's labelled inc hashes and validates the label set on every call.
  const eventTallies = new Map<string, Map<string, { table: string; op: string; n: number }>>();
  const flushEventTallies = () => {
    for (const byOp of eventTallies.values()) {
      for (const t of byOp.values()) {
        if (t.n === 0) continue;
        const n = t.n;
        t.n = 0;
        events.inc({ table: t.table, op: t.op }, n);
      }
    }
  };
  const events: Counter<'table' | 'op'> = new Counter({
    name: 'walnats_events_total',
    help: 'Change events published and acknowledged by JetStream, by table and op.',
    labelNames: ['table', 'op'] as const,
    registers,
    collect: flushEventTallies,
  });
  const reconnects = new Counter({ name: 'walnats_reconnects_total', help: 'Reconnections, by target (postgres, nats).', labelNames: ['target'] as const, registers });
  const reconnectChildren = {
    postgres: reconnects.labels({ target: 'postgres' }),
    nats: reconnects.labels({ target: 'nats' }),
  };
  // Known label sets start at 0, so that rate() and alerts see the series before the first event.
  for (const c of Object.values(reconnectChildren)) c.inc(0);
  const confirmedLsn = new Gauge({ name: 'walnats_confirmed_lsn', help: 'Flush LSN last confirmed to Postgres, as a number.', registers });

  const cdc: CdcMetrics = {
    events,
    countEvent(table, op, n = 1) {
      if (!Number.isFinite(n) || n < 0) {
        events.inc({ table, op }, n); // prom-client's own error for a bad increment
        return;
      }
      let byOp = eventTallies.get(table);
      if (!byOp) eventTallies.set(table, (byOp = new Map()));
      let t = byOp.get(op);
      if (!t) {
        events.inc({ table, op }, 0); // validates the labels now, and the series starts at 0
        byOp.set(op, (t = { table, op, n: 0 }));
      }
      t.n += n;
    },
    publishLatency: new Histogram({ name: 'walnats_publish_latency_seconds', help: 'Time from publishing an event to its JetStream acknowledgement.', buckets: PUBLISH_BUCKETS, registers }),
    commitToPublishLag: new Histogram({ name: 'walnats_commit_to_publish_lag_seconds', help: 'Time from the commit in Postgres to the JetStream acknowledgement.', buckets: LAG_BUCKETS, registers }),
    slotLagBytes: new Gauge({ name: 'walnats_slot_lag_bytes', help: 'WAL bytes between the server position and the confirmed flush LSN of the slot.', registers }),
    slotLagSeconds: new Gauge({ name: 'walnats_slot_lag_seconds', help: "Postgres's flush lag of the walnats walsender (pg_stat_replication.flush_lag): how long confirmed positions trail the WAL; 0 when caught up.", registers }),
    confirmedLsn,
    setConfirmedLsn: (lsn) => confirmedLsn.set(Number(lsn)),
    inFlight: new Gauge({ name: 'walnats_in_flight', help: 'Events published and not yet acknowledged.', registers }),
    reconnects,
    countReconnect: (target) => reconnectChildren[target].inc(),
    transactions: new Counter({ name: 'walnats_transactions_total', help: 'Transactions whose events are all acknowledged by JetStream.', registers }),
    active: new Gauge({ name: 'walnats_active', help: '1 while this process holds the replication slot and streams.', registers }),
    snapshotRows: new Counter({ name: 'walnats_snapshot_rows_total', help: 'Rows published as snapshot or backfill reads, by table.', labelNames: ['table'] as const, registers }),
    snapshotRowsEstimated: new Gauge({ name: 'walnats_snapshot_rows_estimated', help: 'Estimated rows of a table being snapshotted or backfilled (pg_class.reltuples).', labelNames: ['table'] as const, registers }),
  };
  cdc.active.set(0);

  const requests = new Counter({ name: 'walnats_gateway_requests_total', help: 'GraphQL operations, by kind (query, mutation, subscription).', labelNames: ['kind'] as const, registers });
  const requestChildren = {
    query: requests.labels({ kind: 'query' }),
    mutation: requests.labels({ kind: 'mutation' }),
    subscription: requests.labels({ kind: 'subscription' }),
  };
  for (const c of Object.values(requestChildren)) c.inc(0);
  const gateway: GatewayMetrics = {
    subscriptions: new Gauge({ name: 'walnats_gateway_subscriptions', help: 'Open GraphQL subscriptions.', registers }),
    deliveries: new Counter({ name: 'walnats_gateway_deliveries_total', help: 'Subscription payloads delivered to clients.', registers }),
    resolverLatency: new Histogram({ name: 'walnats_gateway_resolver_latency_seconds', help: 'Duration of root resolvers.', buckets: RESOLVER_BUCKETS, registers }),
    requests,
    countRequest: (kind) => requestChildren[kind].inc(),
  };

  return {
    registry,
    up,
    cdc,
    gateway,
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
