/**
 * The one place that wires everything: configuration → connections → CDC daemon, gateway,
 * HTTP server, shutdown. The CLI calls these entry points; each returns a handle whose
 * `stop()` drains, confirms and closes.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import type { WalnatsConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { startHttpServer, type CheckResult, type HttpServerHandle } from './http.ts';
import { connectNats } from './nats-connection.ts';
import { createCdcDaemon, type CdcDaemon } from './cdc/daemon.ts';
import type { CdcMetrics } from './cdc/metrics.ts';
import type { Relation } from './decoder/types.ts';
import { startSlotMonitor } from './cdc/slot-monitor.ts';
import { parseQualifiedName } from './replication/sql.ts';
import { startGatewayPart, type GatewayPart } from './gateway-part.ts';
import { createSnapshotHooks } from './snapshot/engine.ts';
export { requestSnapshot } from './snapshot/request.ts';

export interface RunHandle {
  /** Resolves when the process should exit (after stop() and a graceful drain). */
  done: Promise<void>;
  stop(): Promise<void>;
  /** The HTTP port actually bound (useful with http_port 0). */
  httpPort?: number;
}

/** Binds the daemon's metric calls to the Prometheus registry. */
function cdcMetrics(m: Metrics): CdcMetrics {
  // countEvent runs per event: the `schema.table` label is built once per relation (the
  // decoder replaces a Relation when it is re-sent, never changes one).
  const tableLabels = new WeakMap<Relation, string>();
  const tableLabel = (rel: Relation) => {
    let label = tableLabels.get(rel);
    if (label === undefined) tableLabels.set(rel, (label = `${rel.schema}.${rel.name}`));
    return label;
  };
  return {
    reconnects: { inc: () => m.cdc.countReconnect('postgres') },
    transactions: { inc: () => m.cdc.transactions.inc() },
    confirmedLsn: { set: (v) => m.cdc.confirmedLsn.set(v) },
    inFlight: { set: (v) => m.cdc.inFlight.set(v) },
    active: { set: (v) => m.cdc.active.set(v) },
    publishLatency: { observe: (v) => m.cdc.publishLatency.observe(v) },
    countEvent(change, commitMs) {
      m.cdc.countEvent('relation' in change ? tableLabel(change.relation) : '', change.kind);
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
  gateway?: GatewayPart;
  http?: HttpServerHandle;
  /** Stops the whole process (snapshot_mode initial_only, once the snapshot is done). */
  requestStop?: () => void;
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
    poisonPolicy: c.poisonPolicy,
    heartbeatIntervalMs: c.heartbeatInterval,
    slotRecreate: c.slotRecreate,
    instanceName: `walnats-cdc@${os.hostname()}:${process.pid}`,
    logger: p.logger.child({ component: 'cdc' }),
    metrics: cdcMetrics(p.metrics),
    ...createSnapshotHooks({
      pgUrl: c.pgUrl,
      publication: c.publication,
      prefix: c.prefix,
      mode: c.snapshotMode,
      logger: p.logger.child({ component: 'snapshot' }),
      metrics: {
        rows: (table, n) => {
          p.metrics.cdc.snapshotRows.inc({ table }, n);
          // Reads are events on the table's subject like any other: counted with op "read".
          if (n > 0) p.metrics.cdc.countEvent(table, 'read', n);
        },
        estimated: (table, n) => p.metrics.cdc.snapshotRowsEstimated.set({ table }, n),
      },
      onInitialDone: () => {
        p.logger.info('snapshot_mode initial_only: the initial snapshot is complete; stopping');
        p.requestStop?.();
      },
    }),
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
      p.gateway = await startGatewayPart(p.config, p.nc, logger, metrics);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }
  if (parts.cdc) {
    p.daemon = startDaemon(p);
    let warned = false;
    p.stopSlotMonitor = startSlotMonitor(config.pgUrl, config.slot, (bytes, seconds) => {
      metrics.cdc.slotLagBytes.set(bytes);
      metrics.cdc.slotLagSeconds.set(seconds);
      // Warn once per crossing, so a slowly draining backlog does not flood the log.
      const over = config.slotLagWarnBytes > 0 && bytes > config.slotLagWarnBytes;
      if (over && !warned) logger.warn({ slot: config.slot, lagBytes: bytes, threshold: config.slotLagWarnBytes }, 'slot lag above slot_lag_warn_bytes: Postgres keeps WAL for walnats');
      warned = over;
    }, logger);
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
      if (p.daemon?.role() === 'standby') reasons.push('cdc is a standby: another instance holds the slot');
      else if (p.daemon && !p.daemon.ready()) {
        const s = p.daemon.status();
        reasons.push(`cdc is ${s.state}${s.lastError ? `: ${s.lastError}` : ''}`);
      }
      if (p.gateway && !p.gateway.ready()) reasons.push('gateway schema not loaded');
      return { ready: reasons.length === 0, reasons };
    },
    graphql: p.gateway ? (req, res) => p.gateway!.handle(req, res) : undefined,
  });
  if (p.gateway) p.gateway.attachWebSocket(p.http.server);
  logger.info({ port: p.http.port }, `listening on :${p.http.port} (/metrics, /healthz, /readyz${p.gateway ? ', /graphql' : ''})`);

  let stopped: Promise<void> | undefined;
  let resolveDone!: () => void;
  let rejectDone!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const stop = () =>
    (stopped ??= (async () => {
      logger.info('shutting down');
      // Stop accepting first; then the gateway closes its WebSockets ("going away"), which the
      // HTTP server's close would otherwise wait on for as long as the clients stay; running
      // HTTP requests finish (up to the grace period) with the database pool still open.
      const httpClosed = p.http?.close();
      await p.gateway?.closeSubscriptions();
      await httpClosed;
      await p.gateway?.close();
      await p.daemon?.stop();
      await p.stopSlotMonitor?.();
      await nc.drain().catch(() => nc.close());
      logger.info('stopped');
      const s = p.daemon?.status();
      // A daemon that stopped on a fatal error makes the process exit non-zero.
      if (s?.state === 'failed') rejectDone(new Error(`walnats cdc: ${s.lastError}`));
      else resolveDone();
    })());
  p.requestStop = () => void stop();
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
