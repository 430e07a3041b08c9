/**
 * The fan-out ceiling: a bare `ws` server that takes the same change events from NATS (a core
 * subscription on the table's subjects, fed by the same walnats cdc) and broadcasts one
 * graphql-ws-shaped `next` message per event, serialized and encoded once, to every connected socket.
 * No GraphQL, no per-subscriber work. Prints `ready <port>` once listening.
 *
 *   tsx bench/raw-broadcast.ts <nats-url> <subject> <field>
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { connect } from '@nats-io/transport-node';

const [natsUrl, subject, field] = process.argv.slice(2);
const nc = await connect({ servers: natsUrl });
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
const clients = new Set<WebSocket>();
wss.on('connection', (ws) => {
  clients.add(ws);
  ws.on('close', () => clients.delete(ws));
  ws.on('error', () => clients.delete(ws));
});
nc.subscribe(subject, {
  callback: (_err, m) => {
    const body = m.json<{ after: Record<string, unknown> }>();
    const a = body.after;
    // The same shape and values the gateway sends (bigint ids as strings).
    const row = { id: String(a.id), n: a.n, b: a.b, ts: a.ts };
    // serialized and encoded once, sent as text to every socket (ws's own broadcast example)
    const data = Buffer.from(JSON.stringify({ id: '1', type: 'next', payload: { data: { [field]: { op: 'INSERT', new: row } } } }));
    for (const c of clients) c.send(data, { binary: false });
  },
});
await new Promise<void>((r) => wss.once('listening', () => r()));
const addr = wss.address();
process.stdout.write(`ready ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
process.on('SIGTERM', () => {
  for (const c of clients) c.terminate();
  void nc.close().finally(() => process.exit(0));
});
