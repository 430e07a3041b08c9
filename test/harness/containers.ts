/**
 * The same servers as src/local, on testcontainers, for machines that have a Docker engine
 * (set WALNATS_TEST_DOCKER=1). Host ports are fixed per server so that stop/start keeps the
 * address, as the outage tests need. Images: WALNATS_TEST_PG_IMAGE (postgres:16),
 * WALNATS_TEST_NATS_IMAGE (nats:2.10).
 */
import { execFileSync } from 'node:child_process';
import { sqlAccess, type PgServer, type PgServerOptions } from '../../src/local/postgres.ts';
import type { NatsServer } from '../../src/local/nats.ts';
import { freePort, waitFor } from '../../src/local/ports.ts';

const docker = (...args: string[]) => execFileSync('docker', args, { stdio: 'pipe' });

export async function startPostgresContainer(opts: PgServerOptions = {}): Promise<PgServer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = await freePort();
  const settings: Record<string, string | number> = { wal_level: 'logical', max_replication_slots: 20, max_wal_senders: 20, fsync: 'off', max_connections: 200, ...opts.settings };
  const container = await new GenericContainer(process.env.WALNATS_TEST_PG_IMAGE ?? 'postgres:16')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withCommand(['postgres', ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])])
    .withExposedPorts({ container: 5432, host: port })
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const id = container.getId();
  const server: PgServer = {
    port,
    dataDir: '/var/lib/postgresql/data',
    ...sqlAccess(port),
    async stop() {
      docker('stop', id);
    },
    async start() {
      docker('start', id);
      await waitFor('postgres container', async () => (await server.sql('SELECT 1')) && true);
    },
    async destroy() {
      await container.stop();
    },
  };
  await waitFor('postgres container', async () => (await server.sql('SELECT 1')) && true);
  return server;
}

export async function startNatsContainer(extraArgs: string[] = []): Promise<NatsServer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const port = await freePort();
  const container = await new GenericContainer(process.env.WALNATS_TEST_NATS_IMAGE ?? 'nats:2.10')
    .withCommand(['-js', '-sd', '/data', ...extraArgs])
    .withExposedPorts({ container: 4222, host: port })
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  const id = container.getId();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    storeDir: '/data',
    pid: undefined, // inside the container: not a process of this machine's view
    pause: () => void docker('pause', id),
    resume: () => void docker('unpause', id),
    async stop() {
      docker('stop', id);
    },
    async start() {
      docker('start', id);
    },
    async destroy() {
      await container.stop();
    },
  };
}
