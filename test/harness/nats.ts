/** Real nats-server for tests: a local process, or a container when WALNATS_TEST_DOCKER=1. */
import { afterAll, beforeAll } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { late } from './late.ts';
import { startNats as startLocal, type NatsServer } from '../../src/local/nats.ts';
export type { NatsServer } from '../../src/local/nats.ts';

export async function startNats(extraArgs: string[] = []): Promise<NatsServer> {
  if (process.env.WALNATS_TEST_DOCKER === '1') {
    const { startNatsContainer } = await import('./containers.ts');
    return startNatsContainer(extraArgs);
  }
  return startLocal(extraArgs);
}

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
