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

/** A first-attempt failure that is a certificate problem: configuration to fix, not an outage to wait out. */
function isTlsFailure(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return (
    (typeof e?.code === 'string' && /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(e.code)) ||
    (typeof e?.message === 'string' && /certificate|\btls\b|\bssl\b/i.test(e.message))
  );
}

export async function connectNats(s: NatsSettings, name = 'walnats'): Promise<NatsConnection> {
  const opts = natsConnectionOptions(s, name);
  try {
    // One attempt that does not wait: with waitOnFirstConnect the client would retry a server
    // whose certificate it refuses for ever, in silence. Anything else (refused, unreachable,
    // timed out) is an outage, waited out below.
    return await connect({ ...opts, waitOnFirstConnect: false });
  } catch (err) {
    if (isTlsFailure(err)) {
      throw new Error(`cannot connect to NATS at ${s.natsUrl.join(', ')}: TLS: ${(err as Error).message}`, { cause: err });
    }
  }
  try {
    return await connect(opts);
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${s.natsUrl.join(', ')}: ${(err as Error).message}`, { cause: err });
  }
}
