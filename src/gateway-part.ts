/** Builds the GraphQL gateway from configuration, for `walnats gateway` and `walnats all`. */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { WalnatsConfig } from './config.ts';
import type { Metrics } from './metrics.ts';
import { createGateway, type Gateway } from './gateway/index.ts';
import { defaultStreamName } from './events/subject.ts';
import { openCatalogConnection } from './replication/connection.ts';

export type GatewayPart = Pick<Gateway, 'ready' | 'close' | 'closeSubscriptions' | 'handle' | 'attachWebSocket'>;

async function currentDatabase(pgUrl: string): Promise<string> {
  const c = await openCatalogConnection(pgUrl, 'walnats-gateway');
  try {
    return (await c.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db;
  } finally {
    await c.end();
  }
}

export async function startGatewayPart(c: WalnatsConfig, nc: NatsConnection, logger: Logger, metrics: Metrics): Promise<GatewayPart> {
  const database = await currentDatabase(c.pgUrl);
  const jwtConfigured = c.jwtSecret || c.jwtPublicKey || c.jwtJwksUrl;
  return createGateway({
    pgUrl: c.pgUrl,
    nc,
    stream: c.streamName ?? defaultStreamName(c.prefix, database),
    subjectPrefix: c.prefix,
    database,
    schemas: c.gatewaySchemas,
    adminSecret: c.adminSecret,
    jwt: jwtConfigured
      ? {
          secret: c.jwtSecret,
          publicKey: c.jwtPublicKey,
          jwksUrl: c.jwtJwksUrl,
          algorithms: c.jwtAlgorithms.length ? c.jwtAlgorithms : undefined,
          claimsNamespace: c.jwtClaimsNamespace,
        }
      : undefined,
    anonymousRole: c.anonymousRole,
    permissions: c.permissionsFile,
    validatorsDir: c.validatorsDir,
    maxDepth: c.gatewayMaxDepth,
    maxRows: c.gatewayMaxRows,
    statementTimeoutMs: c.gatewayStatementTimeout,
    introspection: c.gatewayIntrospection,
    rateLimit: c.gatewayRateLimit,
    production: process.env.NODE_ENV === 'production',
    logger,
    metrics: { registry: metrics.registry },
  });
}
