/** Real nats-server for tests: a local process, or a container when WALNATS_TEST_DOCKER=1. */
import { startNats as startLocal, type NatsServer } from '../../src/local/nats.ts';
export type { NatsServer } from '../../src/local/nats.ts';

export async function startNats(extraArgs: string[] = []): Promise<NatsServer> {
  if (process.env.WALNATS_TEST_DOCKER === '1') {
    const { startNatsContainer } = await import('./containers.ts');
    return startNatsContainer(extraArgs);
  }
  return startLocal(extraArgs);
}

