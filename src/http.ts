/**
 * The one HTTP port of a walnats process (DESIGN §1): /metrics, /healthz, /readyz, and
 * /graphql when the gateway runs in the process. Plain node:http: the operational endpoints
 * must keep answering even when the GraphQL stack is busy or broken, and need no framework.
 *
 * /healthz = liveness (is the process alive and are its loops turning? a failure means
 * "restart me"); /readyz = readiness (should traffic / the rollout proceed? e.g. the CDC
 * daemon streams, the gateway has a schema). Both answer JSON with the reasons.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';

export interface CheckResult {
  ok: boolean;
  /** Why, when not ok; or a short state description. */
  detail?: string;
}

export interface HealthReport {
  ok: boolean;
  /** Per component/loop, e.g. `{ keepalive: { ok: true }, publisher: { ok: false, detail: 'no ack for 60s' } }`. */
  checks?: Record<string, CheckResult>;
}

export interface ReadyReport {
  ready: boolean;
  /** Why not ready (empty when ready). */
  reasons?: string[];
  checks?: Record<string, CheckResult>;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpServerOptions {
  /** 0 = a free port (see `port` of the result). */
  port: number;
  host?: string;
  metrics: Pick<Metrics, 'render' | 'contentType'>;
  health: () => HealthReport | Promise<HealthReport>;
  ready: () => ReadyReport | Promise<ReadyReport>;
  /** Handles every request under /graphql (GraphiQL, HTTP, SSE). */
  graphql?: RequestHandler;
  /**
   * Handles WebSocket upgrades under /graphql (graphql-ws). Alternatively attach a
   * `ws` server to `server` yourself (`new WebSocketServer({ server, path: '/graphql' })`)
   * and leave this unset: then this module registers no upgrade listener of its own.
   */
  upgrade?: UpgradeHandler;
  /** How long close() lets open requests finish before cutting connections; default 5s. */
  closeGraceMs?: number;
}

export interface HttpServerHandle {
  /** The bound port (the actual one when 0 was asked). */
  readonly port: number;
  readonly server: http.Server;
  /** Stops accepting, lets running requests finish (up to the grace period), then closes. */
  close(): Promise<void>;
}

const GRAPHQL_PATH = /^\/graphql(?:\/|$)/;

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const p = pathOf(req);
    if (GRAPHQL_PATH.test(p)) {
      if (opts.graphql) return opts.graphql(req, res);
      return sendJson(res, 404, { error: 'the GraphQL gateway does not run in this process' });
    }
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    switch (p) {
      case '/metrics': {
        if (!isRead) return sendText(res, 405, 'method not allowed\n');
        return sendText(res, 200, await opts.metrics.render(), opts.metrics.contentType);
      }
      case '/healthz': {
        if (!isRead) return sendText(res, 405, 'method not allowed\n');
        let report: HealthReport;
        try {
          report = await opts.health();
        } catch (err) {
          report = { ok: false, checks: { health: { ok: false, detail: `health check failed: ${(err as Error).message}` } } };
        }
        return sendJson(res, report.ok ? 200 : 503, { status: report.ok ? 'ok' : 'unhealthy', ...report });
      }
      case '/readyz': {
        if (!isRead) return sendText(res, 405, 'method not allowed\n');
        let report: ReadyReport;
        try {
          report = await opts.ready();
        } catch (err) {
          report = { ready: false, reasons: [`readiness check failed: ${(err as Error).message}`] };
        }
        return sendJson(res, report.ready ? 200 : 503, { status: report.ready ? 'ready' : 'not ready', reasons: [], ...report });
      }
      case '/':
        return sendJson(res, 200, { name: 'walnats', endpoints: ['/metrics', '/healthz', '/readyz', ...(opts.graphql ? ['/graphql'] : [])] });
      default:
        return sendJson(res, 404, { error: `not found: ${p}` });
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // A broken endpoint must not take the process down; answer 500 if nothing was sent.
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error)?.message ?? String(err) });
      else res.destroy(err as Error);
    });
  });

  // Upgraded sockets (WebSockets) leave the HTTP server's own bookkeeping: close() ends them
  // itself once the grace period is over, or they would hold it open for as long as they live.
  const upgraded = new Set<Duplex>();
  if (opts.upgrade) {
    const upgrade = opts.upgrade;
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      upgraded.add(socket);
      socket.once('close', () => upgraded.delete(socket));
      if (GRAPHQL_PATH.test(pathOf(req))) return upgrade(req, socket, head);
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? ' (another process listens there: choose another port with --http-port / WALNATS_HTTP_PORT / http_port, 0 for any free one)'
        : '';
      reject(new Error(`cannot listen on ${opts.host ?? '0.0.0.0'}:${opts.port}: ${err.message}${inUse}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', onError);
      resolve();
    });
  });

  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.closeAllConnections();
          for (const s of upgraded) s.destroy();
        }, opts.closeGraceMs ?? 5000);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // Keep-alive connections with no request running would hold close() open for nothing.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
