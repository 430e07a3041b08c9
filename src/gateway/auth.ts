/**
 * Who is asking: admin secret, JWT (HS*, RS*, PS*, ES*, EdDSA; a key or a JWKS URL) with
 * Hasura-style claims, or the anonymous role. Session variables are normalized to
 * lower-case `x-walnats-*` names (`x-hasura-*` claims and headers are accepted as such).
 */
import { createPublicKey, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { GraphQLError } from 'graphql/index.js';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Session } from './permissions.ts';

export interface JwtOptions {
  secret?: string;
  publicKey?: string;
  jwksUrl?: string;
  algorithms?: string[];
  claimsNamespace?: string;
  audience?: string | string[];
  issuer?: string;
}

export interface AuthOptions {
  adminSecret?: string;
  jwt?: JwtOptions;
  anonymousRole?: string;
}

export interface Principal {
  role: string;
  admin: boolean;
  session: Session;
  /** Epoch ms when the credential expires (JWT exp), if it does. */
  expiresAt?: number;
}

export class AuthError extends GraphQLError {
  constructor(message: string, public readonly status = 401) {
    super(message, { extensions: { code: 'access-denied', http: { status } } });
  }
}

type Headers = Record<string, string | undefined>;

export function lowerHeaders(h: Iterable<[string, string]> | Record<string, unknown>): Headers {
  const out: Headers = {};
  const entries = Symbol.iterator in Object(h) ? [...(h as Iterable<[string, string]>)] : Object.entries(h as Record<string, unknown>);
  for (const [k, v] of entries) if (typeof v === 'string') out[k.toLowerCase()] = v;
  return out;
}

export function authConfigured(o: AuthOptions): boolean {
  return !!(o.adminSecret || o.jwt?.secret || o.jwt?.publicKey || o.jwt?.jwksUrl);
}

const HS = ['HS256', 'HS384', 'HS512'];
const ASYM = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export class Authenticator {
  private key: KeyObject | JWTVerifyGetKey | undefined;
  private algorithms: string[];
  constructor(private readonly o: AuthOptions) {
    const j = o.jwt;
    if (j?.jwksUrl) this.key = createRemoteJWKSet(new URL(j.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
    else if (j?.publicKey) this.key = createPublicKey(j.publicKey);
    else if (j?.secret) this.key = createSecretKey(Buffer.from(j.secret));
    this.algorithms = j?.algorithms?.length ? j.algorithms : j?.secret && !j.publicKey && !j.jwksUrl ? HS : ASYM;
  }

  get open(): boolean {
    return !authConfigured(this.o);
  }

  async authenticate(headers: Headers): Promise<Principal> {
    if (this.open) return { role: 'admin', admin: true, session: sessionFromHeaders(headers) };
    const secret = headers['x-walnats-admin-secret'] ?? headers['x-hasura-admin-secret'];
    if (secret !== undefined) {
      if (!this.o.adminSecret || !safeEqual(secret, this.o.adminSecret)) throw new AuthError('invalid admin secret');
      const session = sessionFromHeaders(headers);
      const role = session['x-walnats-role'];
      // The admin may act as another role to test permissions.
      return role && role !== 'admin' ? { role, admin: false, session } : { role: 'admin', admin: true, session };
    }
    const authz = headers.authorization;
    if (authz !== undefined) {
      if (!this.key) throw new AuthError('JWT authentication is not configured');
      const m = /^Bearer\s+(\S+)$/i.exec(authz);
      if (!m) throw new AuthError('malformed Authorization header: expected "Bearer <token>"');
      return this.verify(m[1], headers);
    }
    if (this.o.anonymousRole) return { role: this.o.anonymousRole, admin: false, session: { 'x-walnats-role': this.o.anonymousRole } };
    throw new AuthError('authentication required');
  }

  private async verify(token: string, headers: Headers): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      const r = await jwtVerify(token, this.key as KeyObject, {
        algorithms: this.algorithms,
        audience: this.o.jwt?.audience,
        issuer: this.o.jwt?.issuer,
        requiredClaims: ['exp'],
      });
      payload = r.payload as Record<string, unknown>;
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new AuthError(code === 'ERR_JWT_EXPIRED' ? 'JWT expired' : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' ? `invalid JWT: ${(e as Error).message}` : 'invalid JWT');
    }
    const ns = this.o.jwt?.claimsNamespace ?? 'https://hasura.io/jwt/claims';
    const claims = (payload[ns] ?? {}) as Record<string, unknown>;
    const session: Session = {};
    for (const [k, v] of Object.entries(claims)) {
      const key = k.toLowerCase().replace(/^x-hasura-/, 'x-walnats-');
      if (!key.startsWith('x-walnats-')) continue;
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') session[key] = String(v);
    }
    const allowed = (claims['x-hasura-allowed-roles'] ?? claims['x-walnats-allowed-roles']) as unknown;
    const allowedRoles = Array.isArray(allowed) ? allowed.map(String) : [];
    const def = session['x-walnats-default-role'];
    const wanted = headers['x-walnats-role'] ?? headers['x-hasura-role'] ?? def;
    if (!wanted) throw new AuthError('JWT has no default role', 403);
    if (wanted !== def && !allowedRoles.includes(wanted)) throw new AuthError(`role ${wanted} is not allowed by the JWT`, 403);
    if (wanted === 'admin') throw new AuthError('the admin role needs the admin secret', 403);
    session['x-walnats-role'] = wanted;
    const exp = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
    return { role: wanted, admin: false, session, expiresAt: exp };
  }
}

function sessionFromHeaders(h: Headers): Session {
  const s: Session = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const key = k.replace(/^x-hasura-/, 'x-walnats-');
    if (key.startsWith('x-walnats-') && key !== 'x-walnats-admin-secret') s[key] = v;
  }
  return s;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
