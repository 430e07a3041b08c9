/**
 * Per-role, per-table permissions (the `permissions_file`, YAML or JSON) and the access a
 * request has once its role and session variables are known. See docs/gateway.md.
 *
 * ```yaml
 * roles:
 *   user:
 *     introspection: false        # optional, default: gateway_introspection
 *     max_rows: 100               # optional, caps every list (default gateway_max_rows)
 *     rate_limit: 20              # optional, operations/s of the role (default gateway_rate_limit), or
 *                                 # { per_second: 20, burst: 40, by: X-Hasura-User-Id } for a bucket per user
 *     tables:
 *       orders:                   # `table` (first configured schema) or `schema.table`
 *         select: { columns: [id, qty, customer_id], filter: { customer_id: { _eq: X-Hasura-User-Id } }, allow_aggregations: true }
 *         insert: { columns: [qty], check: { qty: { _gt: 0 } }, set: { customer_id: X-Hasura-User-Id } }
 *         update: { columns: [qty], filter: { customer_id: { _eq: X-Hasura-User-Id } }, check: {...}, set: {...} }
 *         delete: { filter: { customer_id: { _eq: X-Hasura-User-Id } } }
 * ```
 * Column names are Postgres names; `columns: '*'` means all. Filters are bool_exp objects
 * whose keys are Postgres column names or relationship names; a string value naming a
 * session variable (`X-Hasura-*` or `X-Walnats-*`, any case) is replaced by its value.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { GraphQLError } from 'graphql/index.js';
import { ConfigError } from '../config.ts';
import type { Model, TableModel } from './model.ts';

export type BoolExp = Record<string, unknown>;

export interface TablePermissionSpec {
  select?: { columns?: string[] | '*'; filter?: BoolExp; allow_aggregations?: boolean };
  insert?: { columns?: string[] | '*'; check?: BoolExp; set?: Record<string, unknown> };
  update?: { columns?: string[] | '*'; filter?: BoolExp; check?: BoolExp; set?: Record<string, unknown> };
  delete?: { filter?: BoolExp };
}

export interface RateLimitSpec {
  per_second: number;
  burst?: number;
  /** A session variable: one bucket per value of it (e.g. per user) instead of one per role. */
  by?: string;
}

export interface RolePermissionSpec {
  introspection?: boolean;
  max_rows?: number;
  rate_limit?: number | RateLimitSpec;
  tables?: Record<string, TablePermissionSpec>;
}

export interface PermissionsSpec {
  roles: Record<string, RolePermissionSpec>;
}

/**
 * Reads and checks a permissions file; a file that cannot be read or parsed, or that says
 * something wrong, is a configuration error (every problem at once; exit code 2).
 */
export function loadPermissionsFile(file: string): PermissionsSpec {
  const fail = (messages: string[]) => new ConfigError(messages.map((message) => ({ key: 'permissions_file', source: `file ${file}`, message })));
  let spec: PermissionsSpec;
  try {
    const text = fs.readFileSync(file, 'utf8');
    spec = (file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text)) as PermissionsSpec;
  } catch (err) {
    throw fail([`cannot read it: ${(err as Error).message.split('\n')[0]}`]);
  }
  const problems = validatePermissions(spec);
  if (problems.length) throw fail(problems);
  return spec;
}

export function validatePermissions(spec: unknown): string[] {
  const p: string[] = [];
  if (!spec || typeof spec !== 'object' || !('roles' in spec) || typeof (spec as PermissionsSpec).roles !== 'object') {
    return ['top level must be an object with a "roles" map'];
  }
  for (const [role, r] of Object.entries((spec as PermissionsSpec).roles ?? {})) {
    if (role === 'admin') p.push('role "admin" is reserved (the admin secret role)');
    if (!r || typeof r !== 'object') {
      p.push(`roles.${role}: must be an object`);
      continue;
    }
    for (const k of Object.keys(r)) if (!['introspection', 'max_rows', 'rate_limit', 'tables'].includes(k)) p.push(`roles.${role}.${k}: unknown key`);
    if (r.rate_limit !== undefined) p.push(...rateLimitProblems(`roles.${role}.rate_limit`, r.rate_limit));
    for (const [t, tp] of Object.entries(r.tables ?? {})) {
      for (const [op, v] of Object.entries(tp ?? {})) {
        if (!['select', 'insert', 'update', 'delete'].includes(op)) p.push(`roles.${role}.tables.${t}.${op}: unknown operation`);
        const allowed: Record<string, string[]> = {
          select: ['columns', 'filter', 'allow_aggregations'],
          insert: ['columns', 'check', 'set'],
          update: ['columns', 'filter', 'check', 'set'],
          delete: ['filter'],
        };
        for (const k of Object.keys(v ?? {})) if (allowed[op] && !allowed[op].includes(k)) p.push(`roles.${role}.tables.${t}.${op}.${k}: unknown key`);
      }
    }
  }
  return p;
}

export interface ResolvedTableAccess {
  select?: { columns: Set<string>; filter: BoolExp | null; aggregations: boolean };
  insert?: { columns: Set<string>; check: BoolExp | null; set: Record<string, unknown> };
  update?: { columns: Set<string>; filter: BoolExp | null; check: BoolExp | null; set: Record<string, unknown> };
  delete?: { filter: BoolExp | null };
}

/** What a role may do, independent of session variables (schemas are cached per role). */
export interface RoleAccess {
  role: string;
  admin: boolean;
  introspection: boolean;
  maxRows: number;
  /** Operations per second (rate 0 = unlimited). */
  rateLimit: ResolvedRateLimit;
  table(key: string): ResolvedTableAccess | undefined;
}

export function adminAccess(maxRows: number): RoleAccess {
  return {
    role: 'admin',
    admin: true,
    introspection: true,
    maxRows,
    rateLimit: { rate: 0 }, // the admin secret is the operator's: never limited
    table: (key) => {
      void key;
      return ALL;
    },
  };
}
const ALL_COLS = new Proxy(new Set<string>(), { get: (t, p) => (p === 'has' ? () => true : Reflect.get(t, p)) });
const ALL: ResolvedTableAccess = {
  select: { columns: ALL_COLS, filter: null, aggregations: true },
  insert: { columns: ALL_COLS, check: null, set: {} },
  update: { columns: ALL_COLS, filter: null, check: null, set: {} },
  delete: { filter: null },
};

export function roleAccess(model: Model, spec: PermissionsSpec | undefined, role: string, defaults: { introspection: boolean; maxRows: number; rateLimit?: number }): RoleAccess | null {
  const r = spec?.roles?.[role];
  if (!r) return null;
  const tables = new Map<string, ResolvedTableAccess>();
  for (const [name, tp] of Object.entries(r.tables ?? {})) {
    const tm = findTable(model, name);
    if (!tm) continue; // reported by checkPermissions
    const cols = (c: string[] | '*' | undefined) =>
      new Set(c === undefined || c === '*' ? tm.columns.map((x) => x.name) : c.filter((x) => tm.colByPg.has(x)));
    const a: ResolvedTableAccess = {};
    if (tp.select) a.select = { columns: cols(tp.select.columns), filter: tp.select.filter ?? null, aggregations: !!tp.select.allow_aggregations };
    if (tp.insert) a.insert = { columns: cols(tp.insert.columns), check: tp.insert.check ?? null, set: tp.insert.set ?? {} };
    if (tp.update) a.update = { columns: cols(tp.update.columns), filter: tp.update.filter ?? null, check: tp.update.check ?? null, set: tp.update.set ?? {} };
    if (tp.delete) a.delete = { filter: tp.delete.filter ?? null };
    tables.set(tm.key, a);
  }
  return {
    role,
    admin: false,
    introspection: r.introspection ?? defaults.introspection,
    maxRows: Math.min(r.max_rows ?? defaults.maxRows, defaults.maxRows),
    rateLimit: resolveRateLimit(r.rate_limit, defaults.rateLimit ?? 0),
    table: (key) => tables.get(key),
  };
}

export function findTable(model: Model, name: string): TableModel | undefined {
  if (model.byKey.has(name)) return model.byKey.get(name);
  return model.byKey.get(`${model.schemas[0]}.${name}`);
}

/** Problems of a permissions spec against the current model (unknown tables/columns): reported at start. */
export function checkPermissions(model: Model, spec: PermissionsSpec | undefined): string[] {
  const out: string[] = [];
  for (const [role, r] of Object.entries(spec?.roles ?? {})) {
    for (const [name, tp] of Object.entries(r.tables ?? {})) {
      const tm = findTable(model, name);
      if (!tm) {
        out.push(`role ${role}: unknown table ${name}`);
        continue;
      }
      for (const [op, v] of Object.entries(tp)) {
        const c = (v as { columns?: unknown }).columns;
        if (Array.isArray(c)) for (const col of c) if (!tm.colByPg.has(col)) out.push(`role ${role}: ${name}.${op}: unknown column ${col}`);
      }
    }
  }
  return out;
}

function rateLimitProblems(where: string, v: unknown): string[] {
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (typeof v === 'number') return num(v) ? [] : [`${where}: must be a number >= 0 (operations per second; 0 = unlimited)`];
  if (!v || typeof v !== 'object') return [`${where}: must be a number or { per_second, burst, by }`];
  const o = v as Record<string, unknown>;
  const out: string[] = [];
  for (const k of Object.keys(o)) if (!['per_second', 'burst', 'by'].includes(k)) out.push(`${where}.${k}: unknown key`);
  if (!num(o.per_second)) out.push(`${where}.per_second: must be a number >= 0`);
  if (o.burst !== undefined && !(num(o.burst) && (o.burst as number) >= 1)) out.push(`${where}.burst: must be a number >= 1`);
  if (o.by !== undefined && !isSessionVar(o.by)) out.push(`${where}.by: must name a session variable (X-Hasura-* or X-Walnats-*)`);
  return out;
}

/** A role's rate limit as the gateway applies it. `by` is a lower-case x-walnats-* name. */
export interface ResolvedRateLimit {
  rate: number;
  burst?: number;
  by?: string;
}

export function resolveRateLimit(v: number | RateLimitSpec | undefined, fallback: number): ResolvedRateLimit {
  if (v === undefined) return { rate: fallback };
  if (typeof v === 'number') return { rate: v };
  return { rate: v.per_second, burst: v.burst, by: v.by?.toLowerCase().replace(/^x-hasura-/, 'x-walnats-') };
}

export type Session = Record<string, string>;

const SESSION_VAR = /^x-(hasura|walnats)-/i;

export function isSessionVar(v: unknown): v is string {
  return typeof v === 'string' && SESSION_VAR.test(v);
}

export function sessionValue(session: Session, name: string): string {
  const key = name.toLowerCase().replace(/^x-hasura-/, 'x-walnats-');
  const v = session[key];
  if (v === undefined) throw new GraphQLError(`missing session variable ${name}`, { extensions: { code: 'permission-error' } });
  return v;
}

/** Replaces session-variable names by their values, deeply. Throws when one is missing. */
export function substituteSession<T>(v: T, session: Session): T {
  if (isSessionVar(v)) return sessionValue(session, v) as T;
  if (Array.isArray(v)) return v.map((x) => substituteSession(x, session)) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substituteSession(x, session)])) as T;
  return v;
}
