/**
 * Fan-out frames built once per event (fanout.ts writeFrame) must be the bytes `ws.send` would
 * write, in the socket's order with ws's own writes; when ws's sender is not idle nothing is
 * written and the caller falls back to ws.send. Checked on real sockets: a `ws` server, and
 * both a `ws` client and a raw TCP reader of the server's bytes.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, WebSocket } from 'ws';
import { writeFrame } from '../../src/gateway/fanout.ts';
import { leanWebSocket } from '../../bench/ws-lean.ts';

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    for (const c of s.clients) c.terminate();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A ws server and one connected ws client: the server's side of the socket and the client's messages. */
async function pair(): Promise<{ server: WebSocket; client: WebSocket; messages: string[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  servers.push(wss);
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as net.AddressInfo).port;
  const serverSide = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  const messages: string[] = [];
  client.on('message', (d, binary) => messages.push(binary ? `binary:${d.toString()}` : d.toString()));
  await new Promise<void>((r, j) => client.once('open', () => r()).once('error', j));
  return { server: await serverSide, client, messages };
}

const until = async (f: () => boolean) => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(f()).toBe(true);
};

describe('writeFrame', () => {
  it.each([
    ['a 7-bit length', 10],
    ['a 16-bit length', 125 - 24 + 1],
    ['a 16-bit length near its top', 65_535 - 24],
    ['a 64-bit length', 70_000],
  ])('writes the bytes ws.send writes, for %s', async (_what, size) => {
    const prefix = Buffer.from('{"id":"é1","type":"next"');
    const tail = Buffer.from(',"x":"' + 'ü'.repeat(Math.max(0, Math.floor((size - 8) / 2))) + '"}');
    const text = prefix.toString() + tail.toString();
    // what ws.send puts on the wire, captured by reading the server's socket raw
    const captured: Buffer[] = [];
    for (const via of ['ws.send', 'writeFrame'] as const) {
      const { server, client, messages } = await pair();
      const raw = (server as unknown as { _socket: net.Socket })._socket;
      const chunks: Buffer[] = [];
      const write = raw.write.bind(raw);
      (raw as unknown as { write: (b: Buffer | string, ...a: unknown[]) => boolean }).write = (b, ...a) => {
        chunks.push(Buffer.from(b as Buffer));
        return write(b as Buffer, ...(a as []));
      };
      if (via === 'ws.send') server.send(text);
      else expect(writeFrame(server, prefix, tail)).toBe(true);
      await until(() => messages.length === 1);
      expect(messages[0]).toBe(text);
      captured.push(Buffer.concat(chunks));
      client.close();
    }
    expect(captured[1].equals(captured[0])).toBe(true);
  });

  it('keeps order with ws.send on the same socket', async () => {
    const { server, messages } = await pair();
    server.send('one');
    expect(writeFrame(server, Buffer.from('tw'), Buffer.from('o'))).toBe(true);
    server.send('three');
    await until(() => messages.length === 3);
    expect(messages).toEqual(['one', 'two', 'three']);
  });

  it('writes nothing while ws has a message of its own queued or in fragments', async () => {
    const { server, messages } = await pair();
    const sender = (server as unknown as { _sender: { _queue: unknown[]; _firstFragment: boolean } })._sender;
    server.send('part 1 ', { fin: false });
    expect(sender._firstFragment).toBe(false);
    expect(writeFrame(server, Buffer.from('x'), Buffer.from('y'))).toBe(false);
    server.send('part 2', { fin: true });
    expect(writeFrame(server, Buffer.from('after'), Buffer.from(''))).toBe(true);
    await until(() => messages.length === 2);
    expect(messages).toEqual(['part 1 part 2', 'after']);
    sender._queue.push(['queued']); // as ws's sender holds messages while it deflates or reads a Blob
    expect(writeFrame(server, Buffer.from('x'), Buffer.from('y'))).toBe(false);
    sender._queue.length = 0;
  });

  it('writes nothing to a socket that is no longer writable', async () => {
    const { server } = await pair();
    (server as unknown as { _socket: net.Socket })._socket.destroy();
    expect(writeFrame(server, Buffer.from('x'), Buffer.from('y'))).toBe(false);
  });
});

describe('the bench load client (bench/ws-lean.ts)', () => {
  it('reads what a ws server sends: every length, fragments, pings, and the close code', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => [...p][0] ?? false });
    servers.push(wss);
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const port = (wss.address() as net.AddressInfo).port;
    const got: string[] = [];
    const fromClient: string[] = [];
    let pongs = 0;
    wss.on('connection', (ws, req) => {
      expect(req.headers['sec-websocket-protocol']).toBe('graphql-transport-ws');
      ws.on('message', (d) => {
        fromClient.push(d.toString());
        ws.send('a'.repeat(5));
        ws.send('b'.repeat(300));
        ws.send('c'.repeat(70_000));
        ws.send('frag-', { fin: false });
        ws.send('ment', { fin: true });
        ws.ping('p');
        ws.on('pong', () => {
          pongs++;
          ws.close(4400, 'bye');
        });
      });
    });
    const closed = await new Promise<[number, string]>((resolve, reject) => {
      const c = leanWebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws', {
        onOpen: () => c.sendText('hello é'),
        onText: (d, s, e) => got.push(d.toString('utf8', s, e)),
        onClose: (code, reason) => resolve([code, reason]),
        onError: reject,
      });
    });
    expect(fromClient).toEqual(['hello é']);
    expect(got).toEqual(['a'.repeat(5), 'b'.repeat(300), 'c'.repeat(70_000), 'frag-ment']);
    expect(pongs).toBe(1);
    expect(closed).toEqual([4400, 'bye']);
  });
});
