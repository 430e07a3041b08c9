/**
 * The one place that wires everything: configuration → connections → CDC daemon, gateway,
 * HTTP server, shutdown. The CLI calls these entry points; each returns a handle whose
 * `stop()` drains, confirms and closes.
 */
import type { Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import type { WalnatsConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { startHttpServer, type CheckResult, type HttpServerHandle } from './http.ts';
import { connectNats } from './nats-connection.ts';
import { createCdcDaemon, type CdcDaemon } from './cdc/daemon.ts';
import type { CdcMetrics } from './cdc/metrics.ts';
import { startSlotMonitor } from './cdc/slot-monitor.ts';
import { parseQualifiedName } from './replication/sql.ts';
import { startGatewayPart } from './gateway-part.ts';

export interface RunHandle {
  /** Resolves when the process should exit (after stop() and a graceful drain). */
  done: Promise<void>;
  stop(): Promise<void>;
  /** The HTTP port actually bound (useful with http_port 0). */
  httpPort?: number;
}

/** Binds the daemon's metric calls to the Prometheus registry. */
function cdcMetrics(m: Metrics): CdcMetrics {
  return {
    reconnects: { inc: () => m.cdc.countReconnect('postgres') },
    transactions: { inc: () => m.cdc.transactions.inc() },
    confirmedLsn: { set: (v) => m.cdc.confirmedLsn.set(v) },
    inFlight: { set: (v) => m.cdc.inFlight.set(v) },
    countEvent(change, commitMs) {
      if ('relation' in change) m.cdc.countEvent(`${change.relation.schema}.${change.relation.name}`, change.kind);
      else m.cdc.countEvent('', change.kind);
      if (commitMs > 0) m.cdc.commitToPublishLag.observe(Math.max(0, Date.now() - commitMs) / 1000);
    },
  };
}

interface Parts {
  config: WalnatsConfig;
  logger: Logger;
  metrics: Metrics;
  nc: NatsConnection;
  daemon?: CdcDaemon;
  stopSlotMonitor?: () => Promise<void>;
  gateway?: { ready(): boolean; close(): Promise<void>; handle: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void; attachWebSocket(server: import('node:http').Server): void };
  http?: HttpServerHandle;
}

function startDaemon(p: Parts): CdcDaemon {
  const c = p.config;
  return createCdcDaemon({
    pgUrl: c.pgUrl,
    nc: p.nc,
    prefix: c.prefix,
    slot: c.slot,
    publication: c.publication,
    tables: c.tables.map(parseQualifiedName),
    createSlot: c.createSlot,
    createPublication: c.createPublication,
    streamName: c.streamName,
    streamReplicas: c.streamReplicas,
    duplicateWindowMs: c.streamDuplicateWindow,
    streamMaxBytes: c.streamMaxBytes,
    streamMaxAgeMs: c.streamMaxAge,
    publishWindow: c.publishWindow,
    ackTimeoutMs: c.publishAckTimeout,
    statusIntervalMs: c.statusInterval,
    transactionMarkers: c.transactionMarkers,
    logger: p.logger.child({ component: 'cdc' }),
    metrics: cdcMetrics(p.metrics),
  });
}

async function run(config: WalnatsConfig, parts: { cdc: boolean; gateway: boolean }): Promise<RunHandle> {
  const logger = createLogger(config);
  const metrics = createMetrics();
  const nc = await connectNats(config, parts.cdc ? 'walnats-cdc' : 'walnats-gateway');
  const p: Parts = { config, logger, metrics, nc };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') logger.warn({ server: (s as { server?: string }).server }, 'NATS connection lost; reconnecting');
      else if (s.type === 'reconnect') {
        metrics.cdc.countReconnect('nats');
        logger.info('NATS connection re-established');
      }
    }
  })();

  // The gateway first: it is the part that can refuse to start (e.g. open in production),
  // and nothing else should be running when it does.
  if (parts.gateway) {
    try {
      p.gateway = await startGatewayPart(p.config, p.nc, logger.child({ component: 'gateway' }), metrics);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }
  if (parts.cdc) {
    p.daemon = startDaemon(p);
    p.stopSlotMonitor = startSlotMonitor(config.pgUrl, config.slot, (bytes) => metrics.cdc.slotLagBytes.set(bytes), logger);
  }

  p.http = await startHttpServer({
    port: config.httpPort,
    host: config.httpHost,
    metrics,
    health: () => {
      const checks: Record<string, CheckResult> = { nats: { ok: !nc.isClosed() } };
      if (p.daemon) {
        const s = p.daemon.status();
        checks.cdc = { ok: s.state !== 'stopped', detail: s.state };
      }
      return { ok: Object.values(checks).every((c) => c.ok), checks };
    },
    ready: () => {
      const reasons: string[] = [];
      if (p.daemon && !p.daemon.ready()) reasons.push(`cdc is ${p.daemon.status().state}${p.daemon.status().lastError ? `: ${p.daemon.status().lastError}` : ''}`);
      if (p.gateway && !p.gateway.ready()) reasons.push('gateway schema not loaded');
      return { ready: reasons.length === 0, reasons };
    },
    graphql: p.gateway ? (req, res) => p.gateway!.handle(req, res) : undefined,
  });
  if (p.gateway) p.gateway.attachWebSocket(p.http.server);
  logger.info({ port: p.http.port }, `listening on :${p.http.port} (/metrics, /healthz, /readyz${p.gateway ? ', /graphql' : ''})`);

  let stopped: Promise<void> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const stop = () =>
    (stopped ??= (async () => {
      logger.info('shutting down');
      await p.http?.close();
      await p.gateway?.close();
      await p.daemon?.stop();
      await p.stopSlotMonitor?.();
      await nc.drain().catch(() => nc.close());
      logger.info('stopped');
      resolveDone();
    })());
  // The daemon ends only through stop(); if it ever ends by itself, the process ends too.
  void p.daemon?.done.then(() => stop());
  return { done, stop, httpPort: p.http.port };
}

export async function runCdc(config: WalnatsConfig): Promise<RunHandle> {
  return run(config, { cdc: true, gateway: false });
}

export async function runGateway(config: WalnatsConfig): Promise<RunHandle> {
  return run(config, { cdc: false, gateway: true });
}

export async function runAll(config: WalnatsConfig): Promise<RunHandle> {
  return run(config, { cdc: true, gateway: true });
}

export { runDemo } from './demo.ts';
