/**
 * Runs what the schema asks for: reads (one statement per operation), mutations (one
 * transaction per request), change-event subscriptions and live queries, over the current
 * model. The model and the per-role schemas are swapped atomically when the catalog changes.
 */
import {
  GraphQLError, Kind, getNamedType, getOperationAST, getVariableValues, type DocumentNode, type FragmentDefinitionNode, type GraphQLObjectType,
  type GraphQLResolveInfo, type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode,
} from 'graphql/index.js';
import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import type { Logger } from 'pino';
import { readCatalog } from './catalog.ts';
import {
  Channel, EventHub, decodeCursor, encodeCursor, evalBoolExp, lastStreamSeq, needsSql, parseSnapshot, tailTable, visibleIn,
  type Cursor, type DecodedEvent, type EventOp, type StreamSource, type Tail,
} from './events.ts';
import { compactJsonText, mayHoldInexactNumbers, parseLosslessJson } from './json.ts';
import { buildModel, type Model, type RelModel, type TableModel } from './model.ts';
import { PgText, TEXT_ROW, compileDelete, compileInsert, compileReturning, compileUpdate, toRow, type ReturningShape, type Row } from './mutate.ts';
import { adminAccess, checkPermissions, roleAccess, substituteSession, type BoolExp, type PermissionsSpec, type RoleAccess } from './permissions.ts';
import type { Principal } from './auth.ts';
import { buildRoleSchema, type Engine, type MutationKind, type RootKind, type RoleSchema } from './schema.ts';
import { collectFields, jsonObject, newCtx, rootSelect, boolExp, tableRef } from './sql.ts';
import { Slot, containsSlot, slotable, slotableType, type Binding, type CachedRead, type Tracker } from './sqlcache.ts';
import { checkValidators, runValidator, validatorFor, type Validators } from './validators.ts';
import { waitUntilVisible } from '../replication/visibility.ts';

export interface RequestState {
  principal: Principal;
  access: RoleAccess;
  rs: RoleSchema & { model: Model };
  ops: Map<OperationDefinitionNode, Promise<{ data: Record<string, unknown>; cursor?: string }>>;
  tx?: { client: pg.PoolClient; failed: boolean };
  /** The request's variables before coercion (for the written order of order_by keys). */
  rawVariables?: Record<string, unknown>;
  /** Subscribers sharing this (change-event subscription) execution; 1 when absent. */
  audience?: () => number;
  /** A read's data may hold JsonNumbers: serialize the result with stringifyLossless. */
  exactNumbers?: boolean;
}

/**
 * The root field of a subscription resolving one payload: marks the request state for the
 * result graphql-js is executing (results are pulled one at a time, so the mark is this
 * payload's until the next one resolves).
 */
export function subscriptionPayload(payload: unknown, ctx: unknown): unknown {
  const st = (ctx as { walnats?: RequestState })?.walnats;
  if (st) st.exactNumbers = !!payload && typeof payload === 'object' && EXACT_PAYLOADS.has(payload);
  return payload;
}

/** A query's JSON text as data, jsonb numbers kept exactly (JsonNumber; see stringifyLossless). */
function readData(st: RequestState, text: string): Record<string, unknown> {
  if (mayHoldInexactNumbers(text)) st.exactNumbers = true;
  return parseLosslessJson(text, true) as Record<string, unknown>;
}

/** A query's response, serialized from Postgres's JSON text (see GatewayEngine.rawQuery). */
export interface RawQueryResult {
  /** The response body: `{"data":…}`, as graphql-js and JSON.stringify would write it. */
  body: string;
  /** The data, parsed on demand (for anything that reads the result instead of serializing it). */
  data: () => Record<string, unknown>;
}

/** Read statements prepared (named) per connection: at most this many distinct texts. */
export const MAX_PREPARED_STATEMENTS = 256;

/** Compiled read statements kept (all roles and documents); the cache starts over beyond it. */
export const MAX_CACHED_STATEMENTS = 1000;

export interface EngineOptions {
  pool: pg.Pool;
  schemas: string[];
  permissions?: PermissionsSpec;
  validators: Validators;
  maxRows: number;
  introspection: boolean;
  /** Operations per second per role (roles may override it); 0 = unlimited. */
  rateLimit?: number;
  source: StreamSource;
  logger: Logger;
  /** Payloads delivered: `count` subscribers received one (shared executions count each). */
  onDelivery?: (table: string, count: number) => void;
  /** Seconds a root resolver took (queries, mutations, setting up a subscription). */
  onResolve?: (seconds: number) => void;
  /** Run read statements as named prepared statements (see statementName). Default true. */
  preparedStatements?: boolean;
  /** The number of open subscriptions changed. */
  onSubscriptions?: (open: number) => void;
}

const stateOf = (ctx: unknown): RequestState => {
  const s = (ctx as { walnats?: RequestState })?.walnats;
  if (!s) throw new Error('walnats request state missing from the GraphQL context');
  return s;
};

/** A subscriber's view of a table's events: its role's row filter (session substituted) and columns. */
interface EventView {
  /** Projections are shared between subscribers with the same key. */
  key: string;
  filter: BoolExp | null;
  columns: Set<string>;
}

interface Payload {
  op: EventOp;
  old: Record<string, unknown> | null;
  new: Record<string, unknown> | null;
  unchanged: string[];
  commit_time: string | null;
  commit_lsn: string | null;
  seq: number | null;
  row: Record<string, unknown> | null; // Postgres names, for the client's where
  /** old/new hold JsonNumbers (jsonb numbers a double cannot carry). */
  exact: boolean;
}

/** Subscription payloads holding JsonNumbers: their results are serialized with stringifyLossless. */
const EXACT_PAYLOADS = new WeakSet<object>();

export class GatewayEngine implements Engine {
  model!: Model;
  private schemas = new Map<string, RoleSchema & { model: Model }>();
  private accesses = new Map<string, RoleAccess>();
  readonly hub: EventHub;
  /** SQL statements sent for GraphQL operations (BEGIN/COMMIT not counted). */
  statements = 0;
  /** Statements answered by rawQuery, without graphql-js execution (tests and diagnostics). */
  rawReads = 0;
  /**
   * Names of the prepared read statements, by SQL text. A text is prepared from its second use
   * on (one-off texts stay unnamed), and at most MAX_PREPARED_STATEMENTS texts ever get a name,
   * so the statements each connection keeps are bounded. The names outlive schema swaps: a
   * text means the same statement in any schema version, and Postgres re-plans a prepared
   * statement when a table it reads changes.
   */
  private prepared = new Map<string, string>();
  private seenOnce = new Set<string>();
  /** Compiled raw-read statements (sqlcache.ts): schema → document → shape key → statement. */
  private sqlCache = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<string, CachedRead | 'compile'>>>();
  private sqlCacheSize = 0;
  private sqlCacheHits = 0;
  permissionProblems: string[] = [];
  /** Validators that match no table (validators.ts checkValidators): reported with the permission problems. */
  validatorProblems: string[] = [];
  private projections = new WeakMap<DecodedEvent, Map<string, Promise<Payload | null>>>();
  activeSubscriptions = 0;
  /** Change-event results produced (one graphql-js execution each, however many subscribers share it). */
  eventExecutions = 0;

  constructor(private readonly o: EngineOptions) {
    this.hub = new EventHub(o.source);
  }

  /** Reads the catalog; swaps model and schemas when it changed. Returns true on a swap. */
  async refresh(): Promise<boolean> {
    const cat = await readCatalog(this.o.pool, this.o.schemas);
    if (this.model && cat.fingerprint === this.model.fingerprint) return false;
    const model = buildModel(cat, this.o.schemas);
    const problems = checkPermissions(model, this.o.permissions);
    // Build the admin schema first: an error here keeps the old model in service.
    const admin = { ...buildRoleSchema(model, adminAccess(this.o.maxRows), this), model };
    this.model = model;
    this.schemas = new Map([['admin', admin]]);
    this.accesses = new Map();
    this.dropSqlCache();
    this.permissionProblems = problems;
    this.validatorProblems = checkValidators(this.o.validators, (schema, table) => model.byKey.has(`${schema}.${table}`), this.o.schemas[0]);
    return true;
  }

  access(p: Principal): RoleAccess {
    if (p.admin) return adminAccess(this.o.maxRows);
    let a = this.accesses.get(p.role);
    if (!a) {
      a = roleAccess(this.model, this.o.permissions, p.role, { introspection: this.o.introspection, maxRows: this.o.maxRows, rateLimit: this.o.rateLimit }) ?? {
        role: p.role, admin: false, introspection: false, maxRows: this.o.maxRows, rateLimit: { rate: this.o.rateLimit ?? 0 }, table: () => undefined,
      };
      this.accesses.set(p.role, a);
    }
    return a;
  }

  roleSchema(p: Principal): RoleSchema & { model: Model } {
    const key = p.admin ? 'admin' : p.role;
    let s = this.schemas.get(key);
    if (!s) {
      const model = this.model;
      s = { ...buildRoleSchema(model, this.access(p), this), model };
      this.schemas.set(key, s);
    }
    return s;
  }

  newState(p: Principal): RequestState {
    return { principal: p, access: this.access(p), rs: this.roleSchema(p), ops: new Map() };
  }

  // ── SQL ──────────────────────────────────────────────────────────────────────────

  /** The name to prepare a read statement under, or undefined to send it unnamed. */
  statementName(text: string): string | undefined {
    if (this.o.preparedStatements === false) return undefined;
    const name = this.prepared.get(text);
    if (name !== undefined || this.prepared.size >= MAX_PREPARED_STATEMENTS) return name;
    if (!this.seenOnce.has(text)) {
      if (this.seenOnce.size >= 4 * MAX_PREPARED_STATEMENTS) this.seenOnce.clear();
      this.seenOnce.add(text);
      return undefined;
    }
    this.seenOnce.delete(text);
    const fresh = `walnats_r${this.prepared.size + 1}`;
    this.prepared.set(text, fresh);
    return fresh;
  }

  /** Statements run so far under a name (prepared), for tests. */
  preparedCount(): number {
    return this.prepared.size;
  }

  private async exec(st: RequestState, text: string, params: unknown[], prepare = false): Promise<pg.QueryResult> {
    this.statements++;
    const name = prepare ? this.statementName(text) : undefined;
    const q: string | pg.QueryConfig = name ? { name, text, values: params } : text;
    try {
      return st.tx ? await st.tx.client.query(q, params) : await this.o.pool.query(q, params);
    } catch (e) {
      throw pgError(e);
    }
  }

  private subscriptionsChanged(delta: number): void {
    this.activeSubscriptions += delta;
    this.o.onSubscriptions?.(this.activeSubscriptions);
  }

  private async timed<T>(f: () => Promise<T>): Promise<T> {
    if (!this.o.onResolve) return f();
    const t = performance.now();
    try {
      return await f();
    } finally {
      this.o.onResolve((performance.now() - t) / 1000);
    }
  }

  query(tm: TableModel, kind: RootKind, ctx: unknown, info: GraphQLResolveInfo): Promise<unknown> {
    void tm; void kind;
    return this.timed(async () => (await this.read(stateOf(ctx), info)).data[info.path.key as string]);
  }

  cursor(ctx: unknown, info: GraphQLResolveInfo): Promise<string> {
    return this.timed(async () => (await this.read(stateOf(ctx), info)).cursor!);
  }

  private read(st: RequestState, info: GraphQLResolveInfo) {
    let p = st.ops.get(info.operation);
    if (!p) {
      p = this.runRead(st, info);
      st.ops.set(info.operation, p);
    }
    return p;
  }

  private async runRead(st: RequestState, info: GraphQLResolveInfo) {
    const c = newCtx(st.rs.model, st.access, st.principal.session, info.fragments, info.variableValues, st.rawVariables);
    const root = info.schema.getQueryType()!;
    const sets = [info.operation.selectionSet];
    const pairs = rootSelect(c, root, sets, (n) => st.rs.roots.get(n));
    const wantsCursor = collectFields(c, root, sets).some((f) => f.name === 'walnats_cursor');
    // The stream position is read before the statement's snapshot is taken: every change
    // missing from the data is stored after it (see docs/gateway.md for the fine print).
    const seq = wantsCursor ? await lastStreamSeq(this.o.source) : 0;
    const sql = `SELECT ${jsonObject(pairs)}::text AS data${wantsCursor ? ', pg_current_snapshot()::text AS snap' : ''}`;
    const res = await this.exec(st, sql, c.params, true);
    const row = res.rows[0];
    return {
      data: readData(st, row.data),
      cursor: wantsCursor ? encodeCursor({ seq, snap: parseSnapshot(row.snap) }) : undefined,
    };
  }

  /**
   * A query served from Postgres's JSON text without graphql-js execution: the statement is the
   * one the resolvers would run (same compiler, same role, same row filters and limits), and its
   * text is the response when it is exactly what graphql-js would serialize from it: every root
   * field reads a table, no `__typename`, only columns whose scalars pass Postgres's JSON through
   * unchanged (rawSafeColumn), no number of 10+ digits. Otherwise returns undefined and the
   * caller executes the document as usual; when the statement already ran (or failed), its
   * outcome is handed to the resolvers, so it never runs twice.
   */
  async rawQuery(st: RequestState, schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, variableValues: Record<string, unknown> | null | undefined): Promise<RawQueryResult | undefined> {
    const op = getOperationAST(document, operationName);
    if (!op || op.operation !== 'query' || schema !== st.rs.schema || st.ops.has(op)) return undefined; // ops: it ran already (see fast-post.ts)
    const vars = getVariableValues(schema, op.variableDefinitions ?? [], variableValues ?? {}, { maxErrors: 50 });
    if (vars.errors) return undefined;
    const plan = this.rawPlan(st, schema, document, op, vars.coerced, variableValues ?? {});
    if (!plan) return undefined;
    const { sql, params, fields } = plan;
    const t = performance.now();
    let text: string;
    try {
      text = (await this.exec(st, sql, params, true)).rows[0].data as string;
    } catch (e) {
      const failed = Promise.reject(e);
      failed.catch(() => {});
      st.ops.set(op, failed);
      return undefined;
    } finally {
      const s = (performance.now() - t) / 1000;
      for (let i = 0; i < fields; i++) this.o.onResolve?.(s);
    }
    const compact = compactJsonText(text);
    if (compact === undefined) {
      st.ops.set(op, Promise.resolve({ data: readData(st, text) }));
      return undefined;
    }
    this.rawReads++;
    return { body: `{"data":${compact}}`, data: () => parseLosslessJson(text) as Record<string, unknown> };
  }

  /**
   * The raw-read statement of a query (text and parameters), from the statement cache when this
   * (schema, document, operation, role, variable and session shape) compiled before (see
   * sqlcache.ts). undefined: not answered from the JSON text (or the compiler failed: the
   * resolvers report it).
   */
  private rawPlan(st: RequestState, schema: GraphQLSchema, document: DocumentNode, op: OperationDefinitionNode, coerced: Record<string, unknown>, raw: Record<string, unknown>): { sql: string; params: unknown[]; fields: number } | undefined {
    const session = st.principal.session;
    let key = `${op.name?.value ?? ''}\n${st.principal.admin ? '*' : 'r:' + st.principal.role}\n`;
    const marked: string[] = [];
    for (const d of op.variableDefinitions ?? []) {
      const n = d.variable.name.value;
      const v = coerced[n];
      if (slotable(v) && slotableType(schema, d.type)) {
        marked.push(n);
        key += `v:${n}~${typeof v}\n`;
      } else key += `v:${n}=${n in raw ? JSON.stringify(raw[n]) : '-'}\n`;
    }
    if (st.rawVariables && st.rawVariables !== raw) key += `raw=${JSON.stringify(st.rawVariables)}\n`;
    const sessionSlots: string[] = [];
    for (const k of Object.keys(session).sort()) {
      const v = session[k];
      if (slotable(v)) {
        sessionSlots.push(k);
        key += `s:${k}~\n`;
      } else key += `s:${k}=${JSON.stringify(v)}\n`;
    }
    let byDoc = this.sqlCache.get(schema);
    if (!byDoc) this.sqlCache.set(schema, (byDoc = new WeakMap()));
    let entries = byDoc.get(document);
    if (!entries) byDoc.set(document, (entries = new Map()));
    const hit = entries.get(key);
    const fragments: Record<string, FragmentDefinitionNode> = Object.create(null);
    if (hit === 'compile') {
      // This shape's values decide more than parameters: compiled in full every time.
      for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
      const real = this.compileRaw(st, schema, op, fragments, session, coerced, st.rawVariables);
      return real === 'error' || real.sql === undefined ? undefined : { sql: real.sql, params: real.params, fields: real.fields };
    }
    if (hit) {
      this.sqlCacheHits++;
      if (hit.sql === undefined) return undefined;
      const params = hit.bind.map((b) => ('value' in b ? b.value : b.slot === 'var' ? coerced[b.name] : session[b.name]));
      return { sql: hit.sql, params, fields: hit.fields };
    }
    for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
    const real = this.compileRaw(st, schema, op, fragments, session, coerced, st.rawVariables);
    if (real === 'error') return undefined; // not cached: the resolvers report it
    // The same statement with Slots for the values that should only be parameters.
    const tracker: Tracker = { tainted: false };
    const sv: Record<string, unknown> = { ...coerced };
    const sraw: Record<string, unknown> | undefined = st.rawVariables ? { ...st.rawVariables } : undefined;
    for (const n of marked) {
      sv[n] = new Slot('var', n, tracker);
      if (sraw && n in sraw) sraw[n] = sv[n];
    }
    const ss: Record<string, string> = { ...session };
    for (const k of sessionSlots) (ss as Record<string, unknown>)[k] = new Slot('session', k, tracker);
    const slotted = this.compileRaw(st, schema, op, fragments, ss, sv, sraw);
    let entry: CachedRead | 'compile' = 'compile';
    if (slotted !== 'error' && !tracker.tainted && slotted.sql === real.sql && slotted.fields === real.fields && slotted.params.length === real.params.length) {
      const bind: Binding[] = [];
      for (let i = 0; i < real.params.length && bind.length === i; i++) {
        const s = slotted.params[i];
        if (s instanceof Slot) {
          const v = s.from === 'var' ? coerced[s.name] : session[s.name];
          if (isDeepStrictEqual(v, real.params[i])) bind.push({ slot: s.from, name: s.name });
        } else if (!containsSlot(s) && isDeepStrictEqual(s, real.params[i])) bind.push({ value: real.params[i] });
      }
      if (bind.length === real.params.length) entry = { sql: real.sql, fields: real.fields, bind };
    }
    if (++this.sqlCacheSize > MAX_CACHED_STATEMENTS) this.dropSqlCache();
    else entries.set(key, entry);
    return real.sql === undefined ? undefined : { sql: real.sql, params: real.params, fields: real.fields };
  }

  /** Compiles a raw read: sql undefined when graphql-js must execute it; 'error' when the compiler threw. */
  private compileRaw(st: RequestState, schema: GraphQLSchema, op: OperationDefinitionNode, fragments: Record<string, FragmentDefinitionNode>, session: Record<string, string>, variables: Record<string, unknown>, rawVariables: Record<string, unknown> | undefined): { sql?: string; params: unknown[]; fields: number } | 'error' {
    const c = newCtx(st.rs.model, st.access, session, fragments, variables, rawVariables);
    const root = schema.getQueryType();
    if (!root) return { params: [], fields: 0 };
    let pairs: Array<[string, string]>;
    let fields: number;
    try {
      const collected = collectFields(c, root, [op.selectionSet]);
      if (c.notRaw || collected.length === 0 || collected.some((f) => !st.rs.roots.has(f.name))) return { params: [], fields: 0 };
      fields = collected.length;
      pairs = rootSelect(c, root, [op.selectionSet], (n) => st.rs.roots.get(n));
    } catch {
      return 'error';
    }
    if (c.notRaw || pairs.length !== fields) return { params: [], fields: 0 };
    const sql = `SELECT ${jsonObject(pairs)}::text AS data`;
    if (sql.includes('::jsonb || json_build_object(')) return { params: [], fields: 0 }; // jsonb reorders the keys of a wide object
    return { sql, params: c.params, fields };
  }

  /** Statements cached (this schema generation), and how often one was reused: for tests. */
  sqlCacheStats(): { size: number; hits: number } {
    return { size: this.sqlCacheSize, hits: this.sqlCacheHits };
  }

  private dropSqlCache(): void {
    this.sqlCache = new WeakMap();
    this.sqlCacheSize = 0;
  }

  // ── mutations ────────────────────────────────────────────────────────────────────

  mutate(tm: TableModel, kind: MutationKind, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<unknown> {
    return this.timed(() => this.mutateNow(tm, kind, args, ctx, info));
  }

  private async mutateNow(tm: TableModel, kind: MutationKind, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<unknown> {
    const st = stateOf(ctx);
    if (st.tx?.failed) throw new GraphQLError('not run: an earlier mutation of this request failed');
    if (!st.tx) {
      const client = await this.o.pool.connect();
      st.tx = { client, failed: false };
      try {
        await client.query('BEGIN');
      } catch (e) {
        st.tx.failed = true;
        throw pgError(e);
      }
    }
    try {
      return await this.runMutation(st, tm, kind, args, info);
    } catch (e) {
      st.tx.failed = true;
      throw e;
    }
  }

  private async runMutation(st: RequestState, tm: TableModel, kind: MutationKind, args: Record<string, unknown>, info: GraphQLResolveInfo) {
    const single = kind.endsWith('_one') || kind.endsWith('_by_pk');
    const shape: ReturningShape = {
      type: getNamedType(info.returnType) as GraphQLObjectType,
      sets: info.fieldNodes.map((n) => n.selectionSet).filter((s): s is SelectionSetNode => !!s),
      single,
    };
    if (getNamedType(info.returnType).name === 'String') shape.sets = []; // no select permission: nothing to return
    const c = newCtx(st.rs.model, st.access, st.principal.session, info.fragments, info.variableValues, st.rawVariables);
    const v = validatorFor(this.o.validators, tm.schema, tm.name, this.o.schemas[0]);
    const vctx = (op: 'insert' | 'update' | 'delete', extra: object = {}) => ({ op, schema: tm.schema, table: tm.name, role: st.principal.role, session: st.principal.session, ...extra });
    let sql: string;
    if ((kind === 'insert' || kind === 'insert_one') && hasNested(tm, kind === 'insert' ? (args.objects as Record<string, unknown>[]) : [args.object as Record<string, unknown>])) {
      return this.nestedInsert(st, tm, kind, args, shape, info);
    }
    if (kind === 'insert' || kind === 'insert_one') {
      let rows = (kind === 'insert' ? (args.objects as Record<string, unknown>[]) : [args.object as Record<string, unknown>]).map((o) => toRow(tm, o));
      if (rows.length === 0) return { affected_rows: 0, returning: [] };
      if (v?.insert) rows = await Promise.all(rows.map((r) => runValidator<Row>(() => v.insert!(r, vctx('insert')), r, `validator of ${tm.key}: insert`)));
      sql = compileInsert(c, tm, rows, args.on_conflict as Record<string, unknown> | undefined, shape);
    } else if (kind === 'update' || kind === 'update_by_pk') {
      let set = toRow(tm, args._set as Record<string, unknown>);
      const inc = toRow(tm, args._inc as Record<string, unknown>);
      const pk = kind === 'update_by_pk' ? toRow(tm, args.pk_columns as Record<string, unknown>) : null;
      const where = kind === 'update' ? (args.where as BoolExp) : null;
      if (v?.update) set = await runValidator<Row>(() => v.update!(set, vctx('update', { inc, where, pk })), set, `validator of ${tm.key}: update`);
      sql = compileUpdate(c, tm, where, pk, set, inc, shape);
    } else {
      const pk = kind === 'delete_by_pk' ? toRow(tm, args) : null;
      const where = kind === 'delete' ? (args.where as BoolExp) : null;
      if (v?.delete) await runValidator(() => v.delete!(vctx('delete', { where, pk })), null, `validator of ${tm.key}: delete`);
      sql = compileDelete(c, tm, where, pk, shape);
    }
    const res = await this.exec(st, sql, c.params);
    const out = readData(st, res.rows[0].data) as { row: unknown; affected_rows: number; check_failed: number; update_check_failed?: number };
    if ((out.update_check_failed ?? 0) > 0) {
      // an upsert's update path, held to the update permission's check as update_x is
      throw new GraphQLError('check constraint of an update permission has failed', { extensions: { code: 'permission-error' } });
    }
    if (out.check_failed > 0) {
      throw new GraphQLError(`check constraint of an ${kind.startsWith('insert') ? 'insert' : 'update'} permission has failed`, { extensions: { code: 'permission-error' } });
    }
    if (shape.type.name === 'String') return null;
    return out.row;
  }

  /**
   * Hasura-style nested inserts, in the request's transaction: for each object, the rows of
   * its object relationships first (their keys go into the object's foreign key), then the
   * object, then the rows of its array relationships (with the object's key in theirs).
   * One statement per row; the response is read at the end, so `returning` sees the
   * nested rows. `affected_rows` counts every row inserted, nested ones included.
   */
  private async nestedInsert(st: RequestState, tm: TableModel, kind: MutationKind, args: Record<string, unknown>, shape: ReturningShape, info: GraphQLResolveInfo) {
    const objects = kind === 'insert' ? (args.objects as Record<string, unknown>[]) : [args.object as Record<string, unknown>];
    const counter = { n: 0 };
    const written: Array<Record<string, string | null>> = [];
    for (const o of objects) {
      const r = await this.insertTree(st, tm, o, {}, args.on_conflict as Record<string, unknown> | undefined, counter, info);
      if (r) written.push(r);
    }
    const c = newCtx(st.rs.model, st.access, st.principal.session, info.fragments, info.variableValues, st.rawVariables);
    const res = await this.exec(st, compileReturning(c, tm, written, shape, counter.n), c.params);
    if (shape.type.name === 'String') return null;
    return (readData(st, res.rows[0].data) as { row: unknown }).row;
  }

  /** Inserts one object and its nested rows; returns the row in Postgres text form, or null when on_conflict skipped it. */
  private async insertTree(st: RequestState, tm: TableModel, obj: Record<string, unknown>, fixed: Row, onConflict: Record<string, unknown> | undefined, counter: { n: number }, info: GraphQLResolveInfo): Promise<Record<string, string | null> | null> {
    let row: Row = {};
    const keys: Row = {};
    const later: Array<[RelModel, { data: Record<string, unknown>[]; on_conflict?: Record<string, unknown> }]> = [];
    for (const [k, v] of Object.entries(obj)) {
      const col = tm.colByGql.get(k);
      if (col) {
        row[col.name] = v;
        continue;
      }
      const rel = tm.relByName.get(k);
      if (!rel) throw new GraphQLError(`unknown column ${k}`);
      if (v == null) continue;
      const target = st.rs.model.byKey.get(rel.target)!;
      if (rel.kind === 'array') {
        later.push([rel, v as { data: Record<string, unknown>[] }]);
        continue;
      }
      const nested = v as { data: Record<string, unknown>; on_conflict?: Record<string, unknown> };
      const parent = await this.insertTree(st, target, nested.data, {}, nested.on_conflict, counter, info);
      if (!parent) throw new GraphQLError(`nested insert into ${target.base} (relationship ${rel.name}) wrote no row: on_conflict skipped it, so there is no key to refer to`, { extensions: { code: 'constraint-violation' } });
      for (const [p, c] of rel.mapping) keys[p] = new PgText(parent[c]);
    }
    const v = validatorFor(this.o.validators, tm.schema, tm.name, this.o.schemas[0]);
    const all = { ...row, ...fixed, ...keys };
    if (v?.insert) {
      // Keys set by the nesting are shown to the validator as text and cannot be changed by it.
      const shown = Object.fromEntries(Object.entries(all).map(([k, x]) => [k, x instanceof PgText ? x.text : x]));
      const vctx = { op: 'insert' as const, schema: tm.schema, table: tm.name, role: st.principal.role, session: st.principal.session };
      row = await runValidator<Row>(() => v.insert!(shown, vctx), shown, `validator of ${tm.key}: insert`);
    } else row = all;
    for (const [k, x] of Object.entries({ ...fixed, ...keys })) row[k] = x;
    const c = newCtx(st.rs.model, st.access, st.principal.session, info.fragments, info.variableValues, st.rawVariables);
    const res = await this.exec(st, compileInsert(c, tm, [row], onConflict, TEXT_ROW), c.params);
    const out = parseLosslessJson(res.rows[0].data) as { row: Record<string, string | null> | null; affected_rows: number; check_failed: number; update_check_failed?: number };
    if ((out.update_check_failed ?? 0) > 0) throw new GraphQLError(`check constraint of an update permission has failed (${tm.base})`, { extensions: { code: 'permission-error' } });
    if (out.check_failed > 0) throw new GraphQLError(`check constraint of an insert permission has failed (${tm.base})`, { extensions: { code: 'permission-error' } });
    if (!out.row) return null;
    counter.n++;
    for (const [rel, spec] of later) {
      const target = st.rs.model.byKey.get(rel.target)!;
      const ref: Row = {};
      for (const [p, ch] of rel.mapping) ref[ch] = new PgText(out.row[p]);
      for (const d of spec.data ?? []) await this.insertTree(st, target, d, ref, spec.on_conflict, counter, info);
    }
    return out.row;
  }

  /** Ends the request's transaction: commit when everything succeeded. */
  async finishTransaction(st: RequestState, ok: boolean): Promise<Error | null> {
    const tx = st.tx;
    if (!tx) return null;
    st.tx = undefined;
    try {
      await tx.client.query(ok && !tx.failed ? 'COMMIT' : 'ROLLBACK');
      tx.client.release();
      return null;
    } catch (e) {
      tx.client.release(e as Error);
      return pgError(e);
    }
  }

  // ── subscriptions: change events ────────────────────────────────────────────────

  subscribeEvents(tm: TableModel, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<AsyncIterator<unknown>> {
    return this.timed(() => this.subscribeEventsNow(tm, args, ctx, info));
  }

  private async subscribeEventsNow(tm: TableModel, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<AsyncIterator<unknown>> {
    void info;
    const st = stateOf(ctx);
    const where = (args.where as BoolExp) ?? null;
    if (needsSql(tm, where, 'graphql')) throw new GraphQLError('filters across relationships are not supported on change events; filter on columns');
    const ops = args.ops as EventOp[] | undefined;
    const from: Cursor | null = args.from != null ? decodeCursor(args.from as string) : null;
    let stop: (() => void) | undefined;
    const ch = new Channel<unknown>(() => {
      stop?.();
      this.subscriptionsChanged(-1);
    });
    this.subscriptionsChanged(+1);
    let chain = Promise.resolve();
    let view: EventView | null | undefined; // at the first event, then kept: role and session are the subscription's
    const onEvent = (e: DecodedEvent) => {
      chain = chain.then(async () => {
        if (ch.closed) return;
        if (e.schema !== tm.schema || e.table !== tm.name) return;
        if (ops && ops.length && !ops.includes(e.op)) return;
        if (from?.snap && e.txid != null && visibleIn(from.snap, e.txid)) return; // already in the data read
        if (view === undefined) view = this.eventView(st, tm);
        if (!view) return;
        const p = await this.project(st, tm, e, view);
        if (!p) return;
        if (where && e.op !== 'TRUNCATE' && !(p.row && evalBoolExp(tm, p.row, where, 'graphql'))) return;
        const { row: _row, exact, ...out } = p;
        void _row;
        this.eventExecutions++;
        this.o.onDelivery?.(tm.key, st.audience?.() ?? 1);
        const payload = { ...out, cursor: encodeCursor({ seq: e.streamSeq, snap: from?.snap }) };
        if (exact) EXACT_PAYLOADS.add(payload);
        ch.push(payload);
      }).catch((err) => ch.fail(err));
    };
    const onError = (err: unknown) => {
      this.o.logger.warn({ err, table: tm.key }, 'event stream failed');
      ch.fail(new GraphQLError('event stream unavailable', { extensions: { code: 'stream-error' } }));
    };
    try {
      if (from) {
        const tail: Tail = await tailTable(this.o.source, tm.schema, tm.name, from.seq + 1, onEvent, onError);
        stop = () => tail.stop();
      } else {
        stop = await this.hub.subscribe(tm.schema, tm.name, onEvent, onError);
      }
    } catch (err) {
      ch.return();
      this.o.logger.warn({ err, table: tm.key }, 'cannot read the event stream');
      throw new GraphQLError('event stream unavailable', { extensions: { code: 'stream-error' } });
    }
    if (ch.closed) stop();
    return ch;
  }

  /**
   * The role's view of one event: row filter checked (on the old row for deletes), columns
   * projected. Computed once per event and role/session filter, shared by all subscribers.
   */
  private project(st: RequestState, tm: TableModel, e: DecodedEvent, view: EventView): Promise<Payload | null> {
    let m = this.projections.get(e);
    if (!m) this.projections.set(e, (m = new Map()));
    let p = m.get(view.key);
    if (!p) {
      p = this.computeProjection(st, tm, e, view.filter, view.columns);
      m.set(view.key, p);
    }
    return p;
  }

  /** The subscriber's view of `tm`'s events; null when its role may not select from it. */
  private eventView(st: RequestState, tm: TableModel): EventView | null {
    const sel = st.access.table(tm.key)?.select;
    if (!sel) return null;
    const filter = sel.filter ? substituteSession(sel.filter, st.principal.session) : null;
    const key = `${st.rs.model.fingerprint}|${st.principal.admin ? '*admin' : st.principal.role}|${JSON.stringify(filter)}`;
    return { key, filter, columns: sel.columns };
  }

  private async computeProjection(st: RequestState, tm: TableModel, e: DecodedEvent, filter: BoolExp | null, columns: Set<string>): Promise<Payload | null> {
    const row = e.op === 'DELETE' ? e.before : e.op === 'TRUNCATE' ? null : e.after ? { ...(e.before ?? {}), ...e.after } : null;
    const passes = async (r: Record<string, unknown> | null) => {
      if (!filter) return true;
      if (!r) return false;
      return needsSql(tm, filter, 'permission') ? this.sqlCheck(st, tm, r, filter) : evalBoolExp(tm, r, filter, 'permission');
    };
    if (e.op !== 'TRUNCATE' && !(await passes(row))) return null;
    let exact = false;
    // json/jsonb columns from the event's exact values (JsonNumbers), the others as decoded
    const proj = (r: Record<string, unknown> | null, x: Record<string, unknown> | null | undefined) => {
      if (!r) return null;
      const o: Record<string, unknown> = {};
      for (const c of tm.columns) {
        if (!columns.has(c.name) || !(c.name in r)) continue;
        let v = r[c.name];
        if (x && (c.scalar === 'jsonb' || c.scalar === 'json') && x[c.name] !== v) {
          v = x[c.name];
          exact = true;
        }
        o[c.gql] = v;
      }
      return o;
    };
    const oldVisible = e.op === 'DELETE' ? true : e.before ? await passes(e.before) : false;
    return {
      op: e.op,
      old: oldVisible ? proj(e.before, e.exact?.before) : null,
      new: e.op === 'DELETE' ? null : proj(e.after, e.exact?.after),
      unchanged: e.unchanged.filter((n) => columns.has(n)).map((n) => tm.colByPg.get(n)?.gql ?? n),
      commit_time: e.commitTime,
      commit_lsn: e.commitLsn,
      seq: e.seq,
      row,
      exact,
    };
  }

  /** Row filters that cross relationships: evaluated by Postgres on the event's row. */
  private async sqlCheck(st: RequestState, tm: TableModel, row: Record<string, unknown>, filter: BoolExp): Promise<boolean> {
    const c = newCtx(st.rs.model, adminAccess(this.o.maxRows), st.principal.session);
    const p = `$${c.params.push(JSON.stringify(row))}`;
    const cond = boolExp(c, tm, '_e', filter, 'permission');
    try {
      const r = await this.o.pool.query(`SELECT coalesce(${cond}, false) AS ok FROM json_populate_record(NULL::${tableRef(tm)}, ${p}::json) _e`, c.params);
      return r.rows[0]?.ok === true;
    } catch (err) {
      this.o.logger.warn({ err, table: tm.key }, 'row filter check of an event failed: event withheld');
      return false;
    }
  }

  payload(payload: unknown, ctx: unknown): unknown {
    return subscriptionPayload(payload, ctx);
  }

  // ── subscriptions: live queries ─────────────────────────────────────────────────

  subscribeLive(tm: TableModel, kind: RootKind, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<AsyncIterator<unknown>> {
    return this.timed(() => this.subscribeLiveNow(tm, kind, args, ctx, info));
  }

  private async subscribeLiveNow(tm: TableModel, kind: RootKind, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<AsyncIterator<unknown>> {
    void tm; void kind; void args;
    const st = stateOf(ctx);
    const c = newCtx(st.rs.model, st.access, st.principal.session, info.fragments, info.variableValues, st.rawVariables);
    const root = info.parentType;
    const pairs = rootSelect(c, root, [info.operation.selectionSet], (n) => st.rs.roots.get(n)).filter(([k]) => k === info.path.key);
    const sql = `SELECT ${jsonObject(pairs)}::text AS data`;
    const params = c.params;
    const tables = [...c.tablesRead];
    const unsubs: Array<() => void> = [];
    const ch = new Channel<unknown>(() => {
      for (const u of unsubs) u();
      this.subscriptionsChanged(-1);
    }, true);
    this.subscriptionsChanged(+1);
    let running = false;
    let dirty = true;
    let last: string | undefined;
    /** Transactions of the events since the last run: the re-run must see them (replication/visibility.ts). */
    const awaited = new Set<bigint>();
    const run = async () => {
      if (running) return;
      running = true;
      try {
        while (dirty && !ch.closed) {
          dirty = false;
          await new Promise((r) => setImmediate(r)); // let a burst of events coalesce
          if (awaited.size) {
            const xids = [...awaited];
            awaited.clear();
            await waitUntilVisible(this.o.pool, xids, {
              cancelled: () => ch.closed,
              onSlow: (waiting, ms) => this.o.logger.warn({ xids: waiting, ms }, 'live query: waiting for committed transactions to become visible (synchronous replication?)'),
            });
          }
          const res = await this.exec(st, sql, params, true);
          const text = res.rows[0].data as string;
          if (text !== last && !ch.closed) {
            last = text;
            const seen = { exact: false };
            const value = (parseLosslessJson(text, true, seen) as Record<string, unknown>)[info.path.key as string];
            if (seen.exact && value && typeof value === 'object') EXACT_PAYLOADS.add(value);
            ch.push(value);
            this.o.onDelivery?.(tm.key, 1);
          }
        }
      } catch (err) {
        ch.fail(err);
      } finally {
        running = false;
      }
    };
    const onEvent = (e: DecodedEvent) => {
      if (e.txid !== null) awaited.add(e.txid);
      dirty = true;
      void run();
    };
    const onError = (err: unknown) => {
      this.o.logger.warn({ err }, 'live query: event stream failed');
      ch.fail(new GraphQLError('event stream unavailable', { extensions: { code: 'stream-error' } }));
    };
    try {
      for (const key of tables) {
        const [schema, table] = splitKey(st.rs.model, key);
        unsubs.push(await this.hub.subscribe(schema, table, onEvent, onError));
      }
    } catch (err) {
      ch.return();
      this.o.logger.warn({ err }, 'live query: cannot read the event stream');
      throw new GraphQLError('event stream unavailable', { extensions: { code: 'stream-error' } });
    }
    void run();
    return ch;
  }

  close(): void {
    this.hub.close();
  }
}

/** Whether an insert's objects use relationships (nested inserts). */
function hasNested(tm: TableModel, objects: Array<Record<string, unknown>>): boolean {
  return objects.some((o) => o && Object.keys(o).some((k) => !tm.colByGql.has(k) && tm.relByName.has(k)));
}

function splitKey(model: Model, key: string): [string, string] {
  const t = model.byKey.get(key);
  if (t) return [t.schema, t.name];
  const i = key.indexOf('.');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Postgres errors a client should see (constraint, data, timeout); the rest stays masked. */
export function pgError(e: unknown): Error {
  if (e instanceof GraphQLError) return e;
  const code = (e as { code?: string })?.code;
  const msg = (e as Error)?.message ?? String(e);
  if (typeof code === 'string') {
    if (code.startsWith('23')) return new GraphQLError(msg, { extensions: { code: 'constraint-violation', pg: code } });
    if (code.startsWith('22')) return new GraphQLError(msg, { extensions: { code: 'data-exception', pg: code } });
    if (code === '57014') return new GraphQLError('statement timeout', { extensions: { code: 'statement-timeout' } });
    if (code === '42501') return new GraphQLError(msg, { extensions: { code: 'permission-error', pg: code } });
    if (code === '40001' || code === '40P01') return new GraphQLError(msg, { extensions: { code: 'serialization-failure', pg: code } });
  }
  return e instanceof Error ? e : new Error(msg);
}

