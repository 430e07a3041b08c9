/** An in-process CDC daemon against the harness servers, with the defaults the daemon ships. */
import pino from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { createCdcDaemon, type CdcDaemon, type CdcOptions } from '../../src/cdc/daemon.ts';
import { connectNats, type NatsSettings } from '../../src/nats-connection.ts';
import { defaultStreamName } from '../../src/events/subject.ts';

export interface TestDaemon {
  daemon: CdcDaemon;
  nc: NatsConnection;
  stream: string;
  stop(): Promise<void>;
}

/** `nats` adds auth/TLS settings (and may replace the seed list) for the daemon's NATS connection. */
export async function startTestDaemon(
  pgUrl: string,
  natsUrl: string,
  database: string,
  overrides: Partial<CdcOptions> = {},
  nats: Partial<NatsSettings> = {},
): Promise<TestDaemon> {
  const nc = await connectNats({ natsUrl: [natsUrl], ...nats }, 'walnats-test');
  const prefix = overrides.prefix ?? 'walnats';
  const daemon = createCdcDaemon({
    pgUrl,
    nc,
    prefix,
    slot: 'walnats',
    publication: 'walnats',
    tables: [],
    createSlot: true,
    createPublication: true,
    streamReplicas: 1,
    duplicateWindowMs: 120_000,
    streamMaxBytes: -1,
    streamMaxAgeMs: 0,
    publishWindow: 1024,
    ackTimeoutMs: 10_000,
    statusIntervalMs: 200,
    transactionMarkers: false,
    logger: pino({ level: process.env.WALNATS_TEST_LOG ?? 'silent' }),
    ...overrides,
  });
  const stream = overrides.streamName ?? defaultStreamName(prefix, database);
  return {
    daemon,
    nc,
    stream,
    async stop() {
      await daemon.stop();
      await nc.close();
    },
  };
}
