/** Builds the GraphQL gateway from configuration (filled in when the gateway lands). */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import type { WalnatsConfig } from './config.ts';
import type { Metrics } from './metrics.ts';

export interface GatewayPart {
  ready(): boolean;
  close(): Promise<void>;
  handle(req: IncomingMessage, res: ServerResponse): void;
  attachWebSocket(server: Server): void;
}

export async function startGatewayPart(_c: WalnatsConfig, _nc: NatsConnection, _l: Logger, _m: Metrics): Promise<GatewayPart> {
  throw new Error('walnats gateway: not available in this build yet');
}
