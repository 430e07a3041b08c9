/**
 * Encrypted and authenticated connections, against real servers: Postgres over TLS with a
 * client certificate (pg_hba `cert`) through the pg_url's libpq-style parameters, nats-server
 * with TLS (server-only and mutual), and NATS authentication by user/password, token, nkey
 * and a creds file (operator/account/user JWTs built here with @nats-io/nkeys, as `nsc`
 * would). Each case runs the daemon and sees an event arrive; each wrong credential is a
 * clear error.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { waitForSubject } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { connect } from '@nats-io/transport-node';
import { connectNats, natsConnectionOptions, type NatsSettings } from '../../src/nats-connection.ts';

let dir: string;
let pgs: PgServer;
const servers: NatsServer[] = [];
const daemons: TestDaemon[] = [];

// ── certificates ────────────────────────────────────────────────────────────────────

function openssl(...args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, and certificates signed by it: `<name>.crt` / `<name>.key` in `dir`. */
function makeCa(name: string) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`);
}
function makeCert(name: string, cn: string, ca: string, san?: string) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-out', `${name}.crt`, '-extfile', ext);
}
const f = (name: string) => path.join(dir, name);

// ── NATS JWTs (what `nsc` writes), signed with nkeys ───────────────────────────────

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
function natsJwt(signer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: signer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url');
  const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const body = b64url(JSON.stringify(claims));
  const sig = signer.sign(new TextEncoder().encode(`${head}.${body}`));
  return `${head}.${body}.${b64url(sig)}`;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-tls-'));
  makeCa('ca');
  makeCa('otherca');
  makeCert('server', '127.0.0.1', 'ca', 'IP:127.0.0.1,DNS:localhost');
  makeCert('client', 'walnats_tls', 'ca');
  // Postgres reads its key as the postgres user and refuses a key others can read.
  if (process.getuid?.() === 0) {
    const [, , uid, gid] = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim().split(':');
    fs.chmodSync(dir, 0o755);
    for (const n of ['server.key', 'server.crt', 'ca.crt']) fs.chownSync(f(n), Number(uid), Number(gid));
  }
  fs.chmodSync(f('server.key'), 0o600);
  pgs = await startPostgres({
    settings: { ssl: 'on', ssl_cert_file: f('server.crt'), ssl_key_file: f('server.key'), ssl_ca_file: f('ca.crt') },
    hba: [
      'hostssl all walnats_tls 127.0.0.1/32 cert',
      'host    all walnats_tls 127.0.0.1/32 reject',
    ],
  });
  await pgs.sql('CREATE ROLE walnats_tls LOGIN SUPERUSER REPLICATION');
}, 120_000);
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop().catch(() => {})));
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
});
afterAll(async () => {
  await pgs?.destroy();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function nats(args: string[]): Promise<NatsServer> {
  const s = await startNats(args);
  servers.push(s);
  return s;
}

async function newDb(name: string) {
  const db = await pgs.createDatabase(name);
  await pgs.sql('CREATE TABLE t (id int PRIMARY KEY, v text)', [], db);
  return db;
}

/** Runs the daemon with these connection settings, writes a row, and returns the event that arrives. */
async function roundTrip(pgUrl: string, natsUrl: string, db: string, settings: Partial<NatsSettings> = {}) {
  const td = await startTestDaemon(pgUrl, natsUrl, db, { slot: db }, settings);
  daemons.push(td);
  await waitFor('daemon streaming', async () => td.daemon.ready() || undefined, 30_000);
  await pgs.sql(`INSERT INTO t VALUES (1, 'over the wire')`, [], db);
  const [ev] = await waitForSubject(td.nc, td.stream, `walnats.${db}.public.t.>`, 1);
  expect(ev.body.after).toEqual({ id: 1, v: 'over the wire' });
  return td;
}

const tlsPgUrl = (db: string, extra = '') =>
  `postgres://walnats_tls@127.0.0.1:${pgs.port}/${db}?sslmode=verify-full&sslrootcert=${f('ca.crt')}` +
  `&sslcert=${f('client.crt')}&sslkey=${f('client.key')}${extra}`;

describe('Postgres over TLS', () => {
  it('with sslmode=verify-full, sslrootcert, sslcert and sslkey in the pg_url the daemon authenticates by client certificate and streams', async () => {
    const db = await newDb('pgtls');
    const nc = await nats([]);
    await roundTrip(tlsPgUrl(db), nc.url, db);
    // Both of the daemon's connections (catalog and replication) are encrypted, as walnats_tls.
    const rows = await pgs.sql<{ app: string; ssl: boolean; dn: string; backend_type: string }>(
      `SELECT a.application_name AS app, s.ssl, s.client_dn AS dn, a.backend_type FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
        WHERE a.usename = 'walnats_tls' AND a.datname = $1 ORDER BY 1`, [db]);
    expect(rows.map((r) => [r.app, r.ssl, r.dn])).toEqual([
      ['walnats', true, '/CN=walnats_tls'],
      ['walnats-catalog', true, '/CN=walnats_tls'],
    ]);
    expect(rows.find((r) => r.app === 'walnats')!.backend_type).toBe('walsender');
  });

  it('the same user without TLS is refused by pg_hba, with Postgres\'s reason', async () => {
    const db = await newDb('pgnotls');
    const c = new pg.Client({ connectionString: `postgres://walnats_tls@127.0.0.1:${pgs.port}/${db}` });
    await expect(c.connect()).rejects.toThrow(/pg_hba\.conf rejects connection .*no encryption/);
  });

  it('a server certificate from another CA is refused, and the daemon reports it instead of streaming', async () => {
    const db = await newDb('pgwrongca');
    const nc = await nats([]);
    const url = tlsPgUrl(db).replace(f('ca.crt'), f('otherca.crt'));
    const td = await startTestDaemon(url, nc.url, db, { slot: db });
    daemons.push(td);
    await waitFor('the TLS error', async () => td.daemon.status().lastError, 30_000);
    expect(td.daemon.status().lastError).toMatch(/certificate/i);
    expect(td.daemon.ready()).toBe(false);
  });

  it('sslmode=no-verify encrypts without checking the server (and a client certificate still authenticates)', async () => {
    const db = await newDb('pgnoverify');
    const nc = await nats([]);
    const url = `postgres://walnats_tls@127.0.0.1:${pgs.port}/${db}?sslmode=no-verify&sslcert=${f('client.crt')}&sslkey=${f('client.key')}`;
    await roundTrip(url, nc.url, db);
  });
});

describe('NATS over TLS', () => {
  it('server TLS: the daemon verifies the server against nats_tls_ca', async () => {
    const db = await newDb('natstls');
    const s = await nats(['--tls', '--tlscert', f('server.crt'), '--tlskey', f('server.key')]);
    await roundTrip(pgs.url(db), `tls://127.0.0.1:${s.port}`, db, { natsTlsCa: f('ca.crt') });
  });

  it('mutual TLS: the daemon presents nats_tls_cert / nats_tls_key; without them the server refuses', async () => {
    const db = await newDb('natsmtls');
    const s = await nats(['--tlsverify', '--tlscert', f('server.crt'), '--tlskey', f('server.key'), '--tlscacert', f('ca.crt')]);
    await roundTrip(pgs.url(db), `tls://127.0.0.1:${s.port}`, db, { natsTlsCa: f('ca.crt'), natsTlsCert: f('client.crt'), natsTlsKey: f('client.key') });
    // Without a client certificate the server ends the handshake. To the client that looks
    // like a server that does not answer (a timeout), which walnats waits out like an outage;
    // one attempt shows the refusal.
    await expect(connect({ ...natsConnectionOptions({ natsUrl: [s.url], natsTlsCa: f('ca.crt') }, 'no-cert'), waitOnFirstConnect: false, timeout: 3000 }))
      .rejects.toThrow();
  });

  it('a NATS server certificate from another CA is a clear error at once, not a silent wait', async () => {
    const s = await nats(['--tls', '--tlscert', f('server.crt'), '--tlskey', f('server.key')]);
    // Refused at once, not retried in silence: a certificate problem is configuration.
    await expect(connectNats({ natsUrl: [s.url], natsTlsCa: f('otherca.crt') })).rejects.toThrow(/cannot connect to NATS at .*: TLS: .*certificate/i);
  });
});

describe('NATS authentication', () => {
  it('user and password', async () => {
    const db = await newDb('natsuser');
    const s = await nats(['--user', 'walnats', '--pass', 's3cr3t']);
    await roundTrip(pgs.url(db), s.url, db, { natsUser: 'walnats', natsPassword: 's3cr3t' });
    await expect(connectNats({ natsUrl: [s.url], natsUser: 'walnats', natsPassword: 'wrong' })).rejects.toThrow(/Authorization Violation/);
  });

  it('token', async () => {
    const db = await newDb('natstoken');
    const s = await nats(['--auth', 'tok-3n7rop1c']);
    await roundTrip(pgs.url(db), s.url, db, { natsToken: 'tok-3n7rop1c' });
    await expect(connectNats({ natsUrl: [s.url], natsToken: 'nope' })).rejects.toThrow(/Authorization Violation/);
  });

  it('nkey: the daemon signs the server nonce with nats_nkey_seed', async () => {
    const db = await newDb('natsnkey');
    const user = createUser();
    const conf = f(`nkey-${db}.conf`);
    fs.writeFileSync(conf, `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`);
    const s = await nats(['-c', conf]);
    const seed = new TextDecoder().decode(user.getSeed());
    await roundTrip(pgs.url(db), s.url, db, { natsNkeySeed: seed + '\n' });
    const stranger = new TextDecoder().decode(createUser().getSeed());
    await expect(connectNats({ natsUrl: [s.url], natsNkeySeed: stranger })).rejects.toThrow(/Authorization Violation/);
  });

  it('creds file: operator → account (JetStream enabled) → user JWT, as nsc writes them', async () => {
    const db = await newDb('natscreds');
    const operator = createOperator();
    const account = createAccount();
    const sys = createAccount();
    const user = createUser();
    const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
    const operatorJwt = natsJwt(operator, operator.getPublicKey(), 'walnats-test-operator', { type: 'operator', system_account: sys.getPublicKey() });
    const accountJwt = natsJwt(operator, account.getPublicKey(), 'WALNATS', {
      type: 'account',
      limits: { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
      default_permissions: { pub: {}, sub: {} },
    });
    const sysJwt = natsJwt(operator, sys.getPublicKey(), 'SYS', { type: 'account', limits: unlimited, default_permissions: { pub: {}, sub: {} } });
    const userJwt = natsJwt(account, user.getPublicKey(), 'walnats-cdc', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
    const conf = f(`creds-${db}.conf`);
    fs.writeFileSync(conf, [
      `operator: ${operatorJwt}`,
      `system_account: ${sys.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${account.getPublicKey()}: ${accountJwt}`,
      `  ${sys.getPublicKey()}: ${sysJwt}`,
      '}',
      '',
    ].join('\n'));
    const creds = f(`user-${db}.creds`);
    fs.writeFileSync(creds, [
      '-----BEGIN NATS USER JWT-----', userJwt, '------END NATS USER JWT------', '',
      '************************* IMPORTANT *************************', 'NKEY Seed printed below can be used to sign and prove identity.', '',
      '-----BEGIN USER NKEY SEED-----', new TextDecoder().decode(user.getSeed()), '------END USER NKEY SEED------', '',
    ].join('\n'));
    const s = await nats(['-c', conf]);
    await roundTrip(pgs.url(db), s.url, db, { natsCredsFile: creds });
    // A user of an account the server does not know is refused.
    const strangerCreds = f(`stranger-${db}.creds`);
    const strangerAccount = createAccount();
    const stranger = createUser();
    fs.writeFileSync(strangerCreds, fs.readFileSync(creds, 'utf8')
      .replace(userJwt, natsJwt(strangerAccount, stranger.getPublicKey(), 'x', { type: 'user', pub: {}, sub: {}, subs: -1, data: -1, payload: -1 }))
      .replace(new TextDecoder().decode(user.getSeed()), new TextDecoder().decode(stranger.getSeed())));
    await expect(connectNats({ natsUrl: [s.url], natsCredsFile: strangerCreds })).rejects.toThrow(/Authorization Violation/);
  });
});
