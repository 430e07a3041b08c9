import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startHttpServer, type HttpServerHandle, type HttpServerOptions, type ReadyReport } from '../../src/http.ts';
import { createMetrics } from '../../src/metrics.ts';

let handle: HttpServerHandle | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

const base = () => `http://127.0.0.1:${handle!.port}`;

/** A server on a free local port with fresh metrics (no default ones), healthy and ready unless `opts` say otherwise. */
const serve = (opts: Partial<HttpServerOptions> = {}) =>
  startHttpServer({ port: 0, host: '127.0.0.1', metrics: createMetrics({ defaultMetrics: false }), health: () => ({ ok: true }), ready: () => ({ ready: true }), ...opts });

describe('startHttpServer', () => {
  it('serves walnats_* metrics in Prometheus text format on a free port', async () => {
    const metrics = createMetrics();
    metrics.cdc.countEvent('public.orders', 'insert', 3);
    metrics.cdc.countReconnect('nats');
    metrics.cdc.publishLatency.observe(0.002);
    metrics.gateway.countRequest('subscription');
    handle = await serve({ metrics });
    expect(handle.port).toBeGreaterThan(0);
    const res = await fetch(`${base()}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    for (const name of [
      'walnats_up 1',
      'walnats_events_total{table="public.orders",op="insert"} 3',
      'walnats_reconnects_total{target="nats"} 1',
      'walnats_reconnects_total{target="postgres"} 0',
      'walnats_publish_latency_seconds_count 1',
      'walnats_commit_to_publish_lag_seconds',
      'walnats_slot_lag_bytes',
      'walnats_confirmed_lsn',
      'walnats_in_flight',
      'walnats_transactions_total',
      'walnats_active',
      'walnats_gateway_subscriptions',
      'walnats_gateway_deliveries_total',
      'walnats_gateway_resolver_latency_seconds',
      'walnats_gateway_requests_total{kind="subscription"} 1',
      'process_cpu_seconds_total',
    ]) {
      expect(text).toContain(name);
    }
  });

  it('answers /readyz 503 with reasons until ready, then 200; /healthz follows health()', async () => {
    let ready: ReadyReport = { ready: false, reasons: ['cdc: connecting to Postgres'] };
    let healthy = true;
    handle = await serve({
      health: () => ({ ok: healthy, checks: { keepalive: { ok: healthy, detail: healthy ? undefined : 'no keepalive for 60s' } } }),
      ready: async () => ready,
    });
    let res = await fetch(`${base()}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ready: false, reasons: ['cdc: connecting to Postgres'] });
    ready = { ready: true };
    res = await fetch(`${base()}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ready', ready: true, reasons: [] });

    res = await fetch(`${base()}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
    healthy = false;
    res = await fetch(`${base()}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ok: false, checks: { keepalive: { ok: false, detail: 'no keepalive for 60s' } } });
  });

  it('turns a throwing check into 503, not a crash', async () => {
    handle = await serve({
      health: () => {
        throw new Error('boom');
      },
      ready: () => {
        throw new Error('bang');
      },
    });
    const h = await fetch(`${base()}/healthz`);
    expect(h.status).toBe(503);
    expect(JSON.stringify(await h.json())).toContain('boom');
    const r = await fetch(`${base()}/readyz`);
    expect(r.status).toBe(503);
    expect(JSON.stringify(await r.json())).toContain('bang');
  });

  it('forwards /graphql to the handler, 404 for it without one and for unknown paths', async () => {
    const seen: string[] = [];
    handle = await serve({
      graphql: (req, res) => {
        seen.push(`${req.method} ${req.url}`);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"data":{"ok":true}}');
      },
    });
    const res = await fetch(`${base()}/graphql?query=%7Bok%7D`);
    expect(await res.json()).toEqual({ data: { ok: true } });
    await fetch(`${base()}/graphql`, { method: 'POST', body: '{}' });
    expect(seen).toEqual(['GET /graphql?query=%7Bok%7D', 'POST /graphql']);
    expect((await fetch(`${base()}/nope`)).status).toBe(404);
    expect((await fetch(`${base()}/graphqlx`)).status).toBe(404);
    expect((await fetch(`${base()}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('404s /graphql when no gateway runs in the process', async () => {
    handle = await serve();
    expect((await fetch(`${base()}/graphql`)).status).toBe(404);
  });

  it('forwards WebSocket upgrades on /graphql to the upgrade handler', async () => {
    const upgraded: string[] = [];
    handle = await serve({
      upgrade: (req, socket) => {
        upgraded.push(req.url!);
        socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
      },
    });
    const reply = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(handle!.port, '127.0.0.1', () => {
          s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
        });
        let data = '';
        s.on('data', (d) => (data += d));
        s.on('end', () => resolve(data));
        s.on('error', reject);
      });
    expect(await reply('/graphql')).toMatch(/^HTTP\/1.1 101/);
    expect(await reply('/other')).toMatch(/^HTTP\/1.1 404/);
    expect(upgraded).toEqual(['/graphql']);
  });

  it('close() ends upgraded connections too once the grace period is over (a client that never leaves)', async () => {
    handle = await serve({
      closeGraceMs: 200,
      // Accepts the upgrade and keeps the socket, as a WebSocket server does.
      upgrade: (_req, socket) => void socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n'),
    });
    const client = net.connect(handle.port, '127.0.0.1');
    const ended = new Promise<void>((r) => client.once('close', () => r()));
    await new Promise<void>((resolve) => {
      client.once('data', () => resolve());
      client.write('GET /graphql HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
    });
    const outcome = await Promise.race([handle.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 10 s'), 10_000))]);
    expect(outcome).toBe('closed');
    await ended; // the server ended the client's socket
    handle = undefined;
  });

  it('closes with keep-alive connections open, and reports a port in use', async () => {
    handle = await serve();
    await (await fetch(`${base()}/healthz`, { keepalive: true })).text();
    await expect(
      serve({ port: handle.port }),
    ).rejects.toThrow(/cannot listen on 127.0.0.1:\d+: listen EADDRINUSE.* choose another port with --http-port \/ WALNATS_HTTP_PORT/);
    await handle.close();
    handle = undefined;
  });
});
