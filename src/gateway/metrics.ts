/**
 * The gateway's Prometheus metrics. `walnats gateway`/`all` hand it the process registry,
 * where src/metrics.ts has already created the `walnats_gateway_*` metrics (the ones the
 * dashboards read): those are fed as they are. In a registry without them (an embedding),
 * they are created here with the same names, types and labels.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

const RESOLVER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const KINDS = new Set(['query', 'mutation', 'subscription']);

export interface GatewayMetricsHandles {
  delivered(table: string, count?: number): void;
  resolved(seconds: number): void;
  subscriptions(open: number): void;
  request(kind: string): void;
  rateLimited(role: string): void;
}

type AnyMetric = { labelNames?: readonly string[] };

export function gatewayMetrics(registry: Registry | undefined): GatewayMetricsHandles {
  if (!registry) return { delivered() {}, resolved() {}, subscriptions() {}, request() {}, rateLimited() {} };
  /** The registered metric of that name and class, else a new one; undefined on a clash of types. */
  const get = <T>(name: string, cls: abstract new (...a: never[]) => T, create: () => T): T | undefined => {
    const existing = registry.getSingleMetric(name);
    if (existing) return existing instanceof cls ? (existing as T) : undefined;
    try {
      return create();
    } catch {
      return undefined;
    }
  };
  const registers = [registry];
  const subscriptions = get('walnats_gateway_subscriptions', Gauge, () => new Gauge({ name: 'walnats_gateway_subscriptions', help: 'Open GraphQL subscriptions.', registers }));
  const deliveries = get('walnats_gateway_deliveries_total', Counter, () => new Counter({ name: 'walnats_gateway_deliveries_total', help: 'Subscription payloads delivered to clients.', registers }));
  const latency = get('walnats_gateway_resolver_latency_seconds', Histogram, () => new Histogram({ name: 'walnats_gateway_resolver_latency_seconds', help: 'Duration of root resolvers.', buckets: RESOLVER_BUCKETS, registers }));
  const requests = get('walnats_gateway_requests_total', Counter, () => new Counter({ name: 'walnats_gateway_requests_total', help: 'GraphQL operations, by kind (query, mutation, subscription).', labelNames: ['kind'], registers }));
  const limited = get('walnats_gateway_rate_limited_total', Counter, () => new Counter({ name: 'walnats_gateway_rate_limited_total', help: 'GraphQL operations refused by a rate limit, by role.', labelNames: ['role'], registers }));
  const has = (metric: unknown, label: string) => !!(metric as AnyMetric).labelNames?.includes(label);
  const byTable = has(deliveries, 'table');
  const byKind = has(requests, 'kind');
  const byRole = has(limited, 'role');
  return {
    delivered: (table, count = 1) => {
      if (!(count > 0)) return;
      if (byTable) deliveries?.inc({ table }, count);
      else deliveries?.inc(count);
    },
    resolved: (s) => latency?.observe(s),
    subscriptions: (n) => subscriptions?.set(n),
    request: (kind) => {
      if (!byKind) requests?.inc();
      else if (KINDS.has(kind)) requests?.inc({ kind });
    },
    rateLimited: (role) => (byRole ? limited?.inc({ role }) : limited?.inc()),
  };
}
