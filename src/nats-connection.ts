/**
 * The NATS connection both the daemon and the gateway use: seed list, auth (user/password,
 * token, nkey seed, creds file), TLS, and reconnecting for ever — an outage is something
 * walnats waits out, never a reason to exit.
 */
import fs from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';

export interface NatsSettings {
  natsUrl: string[];
  natsUser?: string;
  natsPassword?: string;
  natsToken?: string;
  natsCredsFile?: string;
  natsNkeySeed?: string;
  natsTlsCa?: string;
  natsTlsCert?: string;
  natsTlsKey?: string;
}

export function natsConnectionOptions(s: NatsSettings, name: string): ConnectionOptions {
  const opts: ConnectionOptions = {
    servers: s.natsUrl,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: true,
    noAsyncTraces: true,
  };
  if (s.natsUser) {
    opts.user = s.natsUser;
    opts.pass = s.natsPassword;
  }
  if (s.natsToken) opts.token = s.natsToken;
  if (s.natsCredsFile) opts.authenticator = credsAuthenticator(fs.readFileSync(s.natsCredsFile));
  else if (s.natsNkeySeed) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(s.natsNkeySeed.trim()));
  if (s.natsTlsCa || s.natsTlsCert) {
    opts.tls = {
      ...(s.natsTlsCa ? { caFile: s.natsTlsCa } : {}),
      ...(s.natsTlsCert ? { certFile: s.natsTlsCert, keyFile: s.natsTlsKey } : {}),
    };
  }
  return opts;
}

export async function connectNats(s: NatsSettings, name = 'walnats'): Promise<NatsConnection> {
  try {
    return await connect(natsConnectionOptions(s, name));
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${s.natsUrl.join(', ')}: ${(err as Error).message}`, { cause: err });
  }
}
