/** A nats-server per test file, for suites (kept apart from nats.ts, which bench/ imports outside vitest). */
import { afterAll, beforeAll } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { startNats, type NatsServer } from './nats.ts';
import { late } from './late.ts';

/** One nats-server per file (beforeAll/afterAll) with a client connection and its JetStream manager. */
export function useNatsServer(): { server: NatsServer; nc: NatsConnection; jsm: JetStreamManager } {
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let jsm: JetStreamManager | undefined;
  beforeAll(async () => {
    server = await startNats();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await server?.destroy();
  });
  return { server: late(() => server!), nc: late(() => nc!), jsm: late(() => jsm!) };
}
