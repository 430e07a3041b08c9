/**
 * GraphQL selection → one SQL statement. Every nested relationship becomes a correlated
 * subquery that builds its own JSON in Postgres, so a query costs one round trip however
 * deeply it nests. All values are parameters; identifiers come from the catalog only.
 */
import {
  GraphQLError, GraphQLObjectType, getArgumentValues, getDirectiveValues, GraphQLIncludeDirective, GraphQLSkipDirective,
  getNamedType, Kind, valueFromASTUntyped, type FieldNode, type FragmentDefinitionNode, type GraphQLField, type SelectionSetNode,
} from 'graphql/index.js';
import { quoteIdent } from '../replication/sql.ts';
import type { ColumnModel, Model, RelModel, TableModel } from './model.ts';
import type { BoolExp, RoleAccess, Session } from './permissions.ts';
import { substituteSession } from './permissions.ts';
import { stringifyLossless } from './json.ts';

/** Identifiers are quoted as everywhere in walnats (and a NUL byte is refused). */
export const ident = quoteIdent;
export const tableRef = (t: TableModel) => `${ident(t.schema)}.${ident(t.name)}`;

export interface CompileCtx {
  model: Model;
  access: RoleAccess;
  session: Session;
  fragments: Record<string, FragmentDefinitionNode>;
  variables: Record<string, unknown>;
  /** The variables as the client sent them (before coercion): their objects' keys in the written order. */
  rawVariables?: Record<string, unknown>;
  params: unknown[];
  n: number;
  /** Keys of the tables (CDC sources) this statement reads; live queries re-run on their changes. */
  tablesRead: Set<string>;
  /**
   * Set when the statement's JSON text is not exactly what graphql-js would serialize for it
   * (see rawSafeColumn), or when the selection has meta fields (`__typename`) that only
   * graphql-js fills in: the response must then go through graphql-js execution.
   */
  notRaw?: boolean;
}

export function newCtx(model: Model, access: RoleAccess, session: Session, fragments: CompileCtx['fragments'] = {}, variables: CompileCtx['variables'] = {}, rawVariables?: Record<string, unknown>): CompileCtx {
  return { model, access, session, fragments, variables, rawVariables, params: [], n: 0, tablesRead: new Set() };
}

export function param(ctx: CompileCtx, v: unknown, cast?: string): string {
  ctx.params.push(v);
  return `$${ctx.params.length}${cast ? '::' + cast : ''}`;
}

const alias = (ctx: CompileCtx) => `_t${++ctx.n}`;

function read(ctx: CompileCtx, tm: TableModel) {
  for (const s of tm.sources) ctx.tablesRead.add(s);
}

// ── values ─────────────────────────────────────────────────────────────────────────

/**
 * An array's JSON keeping lower bounds other than 1 as docs/values.md gives them (what change
 * events carry): `{"lower_bounds":[0],"values":[1,2]}`; `arr` is the array, `j` its JSON-ready form.
 */
function boundedArray(arr: string, j: string): string {
  return `CASE WHEN array_dims(${arr}) ~ '\\[(-|[02-9]|1[0-9])' THEN json_build_object('lower_bounds', (SELECT json_agg(array_lower(${arr}, _d) ORDER BY _d) FROM generate_series(1, array_ndims(${arr})) _d), 'values', to_json(${j})) ELSE to_json(${j}) END`;
}

/** JSON-ready SQL expression of a column (or of an aggregate over it). */
export function colExpr(expr: string, col: Pick<ColumnModel, 'scalar' | 'isArray' | 'type'>): string {
  const j = colValue(expr, col);
  return col.isArray && col.scalar !== 'bytea' ? boundedArray(expr, j) : j;
}

function colValue(expr: string, col: Pick<ColumnModel, 'scalar' | 'isArray' | 'type'>): string {
  switch (col.scalar) {
    case 'bigint':
    case 'numeric': {
      const e = col.type === 'money' ? `(${expr})::numeric${col.isArray ? '[]' : ''}` : expr;
      return `(${e})::text${col.isArray ? '[]' : ''}`;
    }
    case 'bytea':
      return col.isArray
        ? `(SELECT array_agg(translate(encode(_b, 'base64'), E'\\n', '')) FROM unnest(${expr}) _b)`
        : `translate(encode(${expr}, 'base64'), E'\\n', '')`;
    case 'String':
      // Types Postgres has no JSON form for (ranges, geometry, …) come out as their text.
      return col.isArray ? expr : `(${expr})::text`;
    default:
      return expr;
  }
}

/**
 * Whether Postgres's JSON text of a column (as colExpr builds it) is exactly what graphql-js
 * would serialize from it: strings, 32-bit integers and booleans whose scalars pass them through.
 * Not: float8 (number formatting differs), json/jsonb (lossless big integers), timestamptz (`Z`
 * normalization), arrays.
 */
export function rawSafeColumn(col: Pick<ColumnModel, 'scalar' | 'isArray'>): boolean {
  return !col.isArray && col.scalar !== 'float8' && col.scalar !== 'json' && col.scalar !== 'jsonb' && col.scalar !== 'timestamptz';
}

/** A GraphQL input value → a node-postgres parameter for a column. */
export function toParam(col: Pick<ColumnModel, 'scalar' | 'isArray'>, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  const one = (x: unknown): unknown => {
    if (x === null) return null;
    switch (col.scalar) {
      case 'json':
      case 'jsonb':
        return stringifyLossless(x); // number literals of the document keep their digits (JsonNumber)
      case 'bytea':
        return Buffer.from(String(x), 'base64');
      default:
        return x;
    }
  };
  if (col.isArray) {
    if (!Array.isArray(v)) throw new GraphQLError('expected a list');
    const deep = (a: unknown[]): unknown[] => a.map((x) => (Array.isArray(x) ? deep(x) : one(x)));
    return deep(v);
  }
  return one(v);
}

// ── field collection ───────────────────────────────────────────────────────────────

export interface CollectedField {
  key: string;
  name: string;
  nodes: FieldNode[];
  def: GraphQLField<unknown, unknown>;
}

export function collectFields(ctx: Pick<CompileCtx, 'fragments' | 'variables'>, type: GraphQLObjectType, sets: SelectionSetNode[]): CollectedField[] {
  const out = new Map<string, CollectedField>();
  const visited = new Set<string>();
  const include = (node: FieldNode | { directives?: FieldNode['directives'] }) => {
    const skip = getDirectiveValues(GraphQLSkipDirective, node as FieldNode, ctx.variables);
    if (skip?.if === true) return false;
    const inc = getDirectiveValues(GraphQLIncludeDirective, node as FieldNode, ctx.variables);
    return inc?.if !== false;
  };
  const walk = (set: SelectionSetNode) => {
    for (const sel of set.selections) {
      if (!include(sel)) continue;
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value;
        if (name.startsWith('__')) {
          (ctx as { notRaw?: boolean }).notRaw = true;
          continue;
        }
        const key = sel.alias?.value ?? name;
        const def = type.getFields()[name];
        if (!def) continue;
        const f = out.get(key);
        if (f) f.nodes.push(sel);
        else out.set(key, { key, name, nodes: [sel], def });
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        if (!sel.typeCondition || sel.typeCondition.name.value === type.name) walk(sel.selectionSet);
      } else if (sel.kind === Kind.FRAGMENT_SPREAD) {
        const fr = ctx.fragments[sel.name.value];
        if (!fr || visited.has(fr.name.value)) continue;
        if (fr.typeCondition.name.value !== type.name) continue;
        visited.add(fr.name.value);
        walk(fr.selectionSet);
        visited.delete(fr.name.value);
      }
    }
  };
  for (const s of sets) walk(s);
  return [...out.values()];
}

export function argsOf(ctx: CompileCtx, f: CollectedField): Record<string, unknown> {
  const args = getArgumentValues(f.def, f.nodes[0], ctx.variables);
  if (args.order_by != null) {
    // Coercion orders an input object's keys as the type declares its fields; the sort
    // keys must keep the order they were written in (`{name: asc, id: desc}` sorts by name
    // first), whether in the document or in a variable.
    const node = f.nodes[0].arguments?.find((a) => a.name.value === 'order_by');
    if (node) args.order_by = inWrittenOrder(args.order_by, valueFromASTUntyped(node.value, ctx.rawVariables ?? ctx.variables));
  }
  return args;
}

/** `coerced` with the keys of every object in the order of `written` (the same value before coercion). */
export function inWrittenOrder(coerced: unknown, written: unknown): unknown {
  if (Array.isArray(coerced)) {
    const w = Array.isArray(written) ? written : [written]; // a single object coerces to a list of one
    return coerced.map((c, i) => inWrittenOrder(c, w[i]));
  }
  if (!coerced || typeof coerced !== 'object' || !written || typeof written !== 'object' || Array.isArray(written)) return coerced;
  const c = coerced as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(written)) if (k in c) out[k] = inWrittenOrder(c[k], (written as Record<string, unknown>)[k]);
  for (const k of Object.keys(c)) if (!(k in out)) out[k] = c[k];
  return out;
}

const subSets = (f: CollectedField) => f.nodes.map((n) => n.selectionSet).filter((s): s is SelectionSetNode => !!s);
const objType = (f: CollectedField) => getNamedType(f.def.type) as GraphQLObjectType;

/** json_build_object over any number of pairs (the function takes at most 100 arguments). */
export function jsonObject(pairs: Array<[string, string]>): string {
  if (pairs.length === 0) return `'{}'::json`;
  const chunks: string[] = [];
  for (let i = 0; i < pairs.length; i += 50) {
    chunks.push(`json_build_object(${pairs.slice(i, i + 50).map(([k, v]) => `'${k}', ${v}`).join(', ')})`);
  }
  return chunks.length === 1 ? chunks[0] : `(${chunks.map((c) => c + '::jsonb').join(' || ')})::json`;
}

// ── permissions in SQL ─────────────────────────────────────────────────────────────

export function selectFilter(ctx: CompileCtx, tm: TableModel, a: string): string {
  const acc = ctx.access.table(tm.key)?.select;
  if (!acc) throw new GraphQLError(`no select permission on ${tm.base}`, { extensions: { code: 'permission-error' } });
  if (!acc.filter) return 'true';
  return boolExp(ctx, tm, a, substituteSession(acc.filter, ctx.session), 'permission');
}

// ── where ──────────────────────────────────────────────────────────────────────────

type Mode = 'graphql' | 'permission';

/** A bool_exp key's column: GraphQL names, and for permission filters Postgres names first. */
export function lookupColumn(tm: TableModel, key: string, mode: Mode): ColumnModel | undefined {
  return mode === 'permission' ? tm.colByPg.get(key) ?? tm.colByGql.get(key) : tm.colByGql.get(key);
}

function relCorrelation(rel: RelModel, parent: string, child: string): string {
  return rel.mapping.map(([p, c]) => `${child}.${ident(c)} = ${parent}.${ident(p)}`).join(' AND ');
}

export function boolExp(ctx: CompileCtx, tm: TableModel, a: string, exp: BoolExp | null | undefined, mode: Mode = 'graphql'): string {
  if (exp == null) return 'true';
  if (typeof exp !== 'object' || Array.isArray(exp)) throw new GraphQLError('a bool_exp must be an object');
  const parts: string[] = [];
  for (const [k, v] of Object.entries(exp)) {
    if (v === undefined) continue;
    if (k === '_and' || k === '_or') {
      const list = (Array.isArray(v) ? v : [v]) as BoolExp[];
      const subs = list.map((x) => boolExp(ctx, tm, a, x, mode));
      parts.push(subs.length === 0 ? (k === '_and' ? 'true' : 'false') : `(${subs.join(k === '_and' ? ' AND ' : ' OR ')})`);
    } else if (k === '_not') {
      parts.push(`NOT coalesce(${boolExp(ctx, tm, a, v as BoolExp, mode)}, false)`);
    } else {
      const col = lookupColumn(tm, k, mode);
      if (col) {
        parts.push(comparison(ctx, `${a}.${ident(col.name)}`, col, v as Record<string, unknown>));
        continue;
      }
      const rel = tm.relByName.get(k);
      if (rel) {
        const target = ctx.model.byKey.get(rel.target)!;
        const b = alias(ctx);
        read(ctx, target);
        const perm = mode === 'graphql' ? ` AND ${selectFilter(ctx, target, b)}` : '';
        parts.push(`EXISTS (SELECT 1 FROM ${tableRef(target)} ${b} WHERE ${relCorrelation(rel, a, b)}${perm} AND ${boolExp(ctx, target, b, v as BoolExp, mode)})`);
        continue;
      }
      throw new GraphQLError(`unknown field ${k} in a filter on ${tm.base}`);
    }
  }
  return parts.length === 0 ? 'true' : parts.length === 1 ? parts[0] : `(${parts.join(' AND ')})`;
}

const OPS: Record<string, string> = { _eq: '=', _neq: '<>', _gt: '>', _gte: '>=', _lt: '<', _lte: '<=' };

function comparison(ctx: CompileCtx, expr: string, col: ColumnModel, exp: Record<string, unknown>): string {
  if (exp == null || typeof exp !== 'object') throw new GraphQLError(`comparison on ${col.gql} must be an object`);
  const json = col.type === 'json' && !col.isArray;
  const e = json ? `${expr}::jsonb` : expr;
  const cast = json ? 'jsonb' : col.sqlType;
  const parts: string[] = [];
  for (const [op, v] of Object.entries(exp)) {
    if (v === undefined) continue;
    if (op in OPS) {
      if (v === null) {
        if (op === '_eq') parts.push(`${e} IS NULL`);
        else if (op === '_neq') parts.push(`${e} IS NOT NULL`);
        else parts.push('false');
      } else parts.push(`${e} ${OPS[op]} ${param(ctx, toParam(col, v), cast)}`);
    } else if (op === '_in' || op === '_nin') {
      if (!Array.isArray(v)) throw new GraphQLError(`${op} expects a list`);
      const p = param(ctx, v.map((x) => toParam(col, x)), cast + '[]');
      parts.push(op === '_in' ? `${e} = ANY(${p})` : `NOT (${e} = ANY(${p}))`);
    } else if (op === '_is_null') {
      if (v === null) continue;
      parts.push(v ? `${e} IS NULL` : `${e} IS NOT NULL`);
    } else if (op === '_like' || op === '_ilike' || op === '_nlike' || op === '_nilike') {
      if (typeof v !== 'string') throw new GraphQLError(`${op} expects a string`);
      const sqlOp = { _like: 'LIKE', _ilike: 'ILIKE', _nlike: 'NOT LIKE', _nilike: 'NOT ILIKE' }[op];
      parts.push(`(${expr})::text ${sqlOp} ${param(ctx, v, 'text')}`);
    } else {
      throw new GraphQLError(`unknown comparison operator ${op}`);
    }
  }
  return parts.length === 0 ? 'true' : parts.length === 1 ? parts[0] : `(${parts.join(' AND ')})`;
}

// ── order by ───────────────────────────────────────────────────────────────────────

export const ORDER_DIRECTIONS: Record<string, string> = {
  asc: 'ASC NULLS LAST', asc_nulls_first: 'ASC NULLS FIRST', asc_nulls_last: 'ASC NULLS LAST',
  desc: 'DESC NULLS FIRST', desc_nulls_first: 'DESC NULLS FIRST', desc_nulls_last: 'DESC NULLS LAST',
};

function orderBy(ctx: CompileCtx, tm: TableModel, a: string, spec: unknown): string[] {
  if (spec == null) return [];
  const list = Array.isArray(spec) ? spec : [spec];
  const out: string[] = [];
  for (const item of list as Array<Record<string, unknown>>) {
    for (const [k, v] of Object.entries(item ?? {})) {
      if (v == null) continue;
      const col = tm.colByGql.get(k);
      if (col) {
        out.push(`${a}.${ident(col.name)} ${ORDER_DIRECTIONS[v as string]}`);
        continue;
      }
      const relName = k.endsWith('_aggregate') ? k.slice(0, -'_aggregate'.length) : k;
      const rel = tm.relByName.get(k) ?? tm.relByName.get(relName);
      if (!rel) throw new GraphQLError(`unknown order_by field ${k}`);
      const target = ctx.model.byKey.get(rel.target)!;
      read(ctx, target);
      const b = alias(ctx);
      const from = `FROM ${tableRef(target)} ${b} WHERE ${relCorrelation(rel, a, b)} AND ${selectFilter(ctx, target, b)}`;
      if (rel.kind === 'object' && k === rel.name) {
        for (const inner of orderBy(ctx, target, b, v)) {
          const m = /^(.*) ((?:ASC|DESC) NULLS (?:FIRST|LAST))$/.exec(inner)!;
          out.push(`(SELECT ${m[1]} ${from} LIMIT 1) ${m[2]}`);
        }
      } else {
        const dir = (v as Record<string, string>).count;
        if (dir) out.push(`(SELECT count(*) ${from}) ${ORDER_DIRECTIONS[dir]}`);
      }
    }
  }
  return out;
}

// ── selections ─────────────────────────────────────────────────────────────────────

export function rowJson(ctx: CompileCtx, tm: TableModel, a: string, type: GraphQLObjectType, sets: SelectionSetNode[]): string {
  const pairs: Array<[string, string]> = [];
  for (const f of collectFields(ctx, type, sets)) {
    const col = tm.colByGql.get(f.name);
    if (col) {
      if (!rawSafeColumn(col)) ctx.notRaw = true;
      pairs.push([f.key, colExpr(`${a}.${ident(col.name)}`, col)]);
      continue;
    }
    const agg = f.name.endsWith('_aggregate') ? tm.relByName.get(f.name.slice(0, -'_aggregate'.length)) : undefined;
    const rel = tm.relByName.get(f.name) ?? agg;
    if (!rel) throw new GraphQLError(`unknown field ${f.name} on ${tm.base}`);
    const target = ctx.model.byKey.get(rel.target)!;
    const correlate = (b: string) => relCorrelation(rel, a, b);
    if (rel.kind === 'object') {
      read(ctx, target);
      const b = alias(ctx);
      pairs.push([f.key, `(SELECT ${rowJson(ctx, target, b, objType(f), subSets(f))} FROM ${tableRef(target)} ${b} WHERE ${correlate(b)} AND ${selectFilter(ctx, target, b)} LIMIT 1)`]);
    } else if (agg && f.name !== rel.name) {
      pairs.push([f.key, aggregateSelect(ctx, target, f, argsOf(ctx, f), correlate)]);
    } else {
      pairs.push([f.key, arraySelect(ctx, target, f, argsOf(ctx, f), correlate)]);
    }
  }
  return jsonObject(pairs);
}

function limitOf(ctx: CompileCtx, v: unknown): number {
  const max = ctx.access.maxRows;
  if (v == null) return max;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new GraphQLError('limit must be a non-negative integer');
  return Math.min(n, max);
}

function offsetOf(v: unknown): number {
  if (v == null) return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new GraphQLError('offset must be a non-negative integer');
  return n;
}

function distinctOn(tm: TableModel, a: string, v: unknown): string[] {
  if (v == null) return [];
  return (Array.isArray(v) ? v : [v]).map((c) => `${a}.${ident(c as string)}`);
}

/** FROM … WHERE … ORDER BY … LIMIT … of a list with the usual arguments. */
function listSource(ctx: CompileCtx, tm: TableModel, a: string, args: Record<string, unknown>, correlate?: (a: string) => string, limit?: number | null): { where: string; order: string[]; tail: string; distinct: string[] } {
  read(ctx, tm);
  const conds = [correlate?.(a), selectFilter(ctx, tm, a), boolExp(ctx, tm, a, args.where as BoolExp)].filter((x) => x && x !== 'true');
  const distinct = distinctOn(tm, a, args.distinct_on);
  const order = [...distinct.map((d) => `${d} ASC`), ...orderBy(ctx, tm, a, args.order_by)];
  const lim = limit === undefined ? limitOf(ctx, args.limit) : limit;
  const tail = `${lim != null ? ` LIMIT ${lim}` : ''}${args.offset ? ` OFFSET ${offsetOf(args.offset)}` : ''}`;
  return { where: conds.length ? conds.join(' AND ') : 'true', order, tail, distinct };
}

export function arraySelect(ctx: CompileCtx, tm: TableModel, f: CollectedField, args: Record<string, unknown>, correlate?: (a: string) => string): string {
  const a = alias(ctx);
  const j = rowJson(ctx, tm, a, objType(f), subSets(f));
  const s = listSource(ctx, tm, a, args, correlate);
  const ord = s.order.length ? s.order.join(', ') : '1';
  const dist = s.distinct.length ? `DISTINCT ON (${s.distinct.join(', ')}) ` : '';
  return `(SELECT coalesce(json_agg(_r.j ORDER BY _r.o), '[]'::json) FROM (SELECT ${dist}${j} AS j, row_number() OVER (ORDER BY ${ord}) AS o FROM ${tableRef(tm)} ${a} WHERE ${s.where}${s.order.length ? ' ORDER BY ' + ord : ''}${s.tail}) _r)`;
}

export function byPkSelect(ctx: CompileCtx, tm: TableModel, f: CollectedField, args: Record<string, unknown>): string {
  const a = alias(ctx);
  read(ctx, tm);
  const conds = tm.cat.primaryKey.map((pk) => {
    const col = tm.colByPg.get(pk)!;
    return `${a}.${ident(pk)} = ${param(ctx, toParam(col, args[col.gql]), col.sqlType)}`;
  });
  return `(SELECT ${rowJson(ctx, tm, a, objType(f), subSets(f))} FROM ${tableRef(tm)} ${a} WHERE ${conds.join(' AND ')} AND ${selectFilter(ctx, tm, a)} LIMIT 1)`;
}

export function aggregateSelect(ctx: CompileCtx, tm: TableModel, f: CollectedField, args: Record<string, unknown>, correlate?: (a: string) => string): string {
  const a = alias(ctx);
  const pairs: Array<[string, string]> = [];
  const type = objType(f);
  let wantsNodes = false;
  for (const g of collectFields(ctx, type, subSets(f))) {
    if (g.name === 'nodes') {
      wantsNodes = true;
      pairs.push([g.key, `coalesce(json_agg(_r."walnats$j" ORDER BY _r."walnats$o") FILTER (WHERE _r."walnats$o" <= ${ctx.access.maxRows}), '[]'::json)`]);
    } else if (g.name === 'aggregate') {
      const aggPairs: Array<[string, string]> = [];
      for (const h of collectFields(ctx, objType(g), subSets(g))) {
        if (h.name === 'count') {
          const hargs = argsOf(ctx, h);
          const cols = (hargs.columns as string[] | undefined) ?? [];
          const d = hargs.distinct ? 'DISTINCT ' : '';
          const target = cols.length === 0 ? '*' : cols.length === 1 ? `_r.${ident(cols[0])}` : `ROW(${cols.map((c) => `_r.${ident(c)}`).join(', ')})`;
          aggPairs.push([h.key, target === '*' ? 'count(*)' : `count(${d}${target})`]);
        } else {
          const fn = h.name; // sum avg min max
          const inner: Array<[string, string]> = [];
          for (const c of collectFields(ctx, objType(h), subSets(h))) {
            const col = tm.colByGql.get(c.name)!;
            const agg = `${fn}(_r.${ident(col.name)})`;
            const asNumeric = (fn === 'sum' || fn === 'avg') && col.scalar !== 'float8';
            if (!asNumeric && !rawSafeColumn(col)) ctx.notRaw = true;
            inner.push([c.key, asNumeric ? `(${agg})::text` : colExpr(agg, col)]);
          }
          aggPairs.push([h.key, jsonObject(inner)]);
        }
      }
      pairs.push([g.key, jsonObject(aggPairs)]);
    }
  }
  const nodesField = collectFields(ctx, type, subSets(f)).find((g) => g.name === 'nodes');
  const j = wantsNodes && nodesField ? rowJson(ctx, tm, a, objType(nodesField), subSets(nodesField)) : 'NULL::json';
  const s = listSource(ctx, tm, a, args, correlate, args.limit == null ? null : limitOf(ctx, args.limit));
  const ord = s.order.length ? s.order.join(', ') : '1';
  const dist = s.distinct.length ? `DISTINCT ON (${s.distinct.join(', ')}) ` : '';
  return `(SELECT ${jsonObject(pairs)} FROM (SELECT ${dist}${a}.*, ${j} AS "walnats$j", row_number() OVER (ORDER BY ${ord}) AS "walnats$o" FROM ${tableRef(tm)} ${a} WHERE ${s.where}${s.order.length ? ' ORDER BY ' + ord : ''}${s.tail}) _r)`;
}

/** Root query fields → one expression per response key. Non-table fields are skipped. */
export function rootSelect(ctx: CompileCtx, root: GraphQLObjectType, sets: SelectionSetNode[], fieldTable: (field: string) => { tm: TableModel; kind: 'list' | 'by_pk' | 'aggregate' } | undefined): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const f of collectFields(ctx, root, sets)) {
    const ft = fieldTable(f.name);
    if (!ft) continue;
    const args = argsOf(ctx, f);
    if (ft.kind === 'list') pairs.push([f.key, arraySelect(ctx, ft.tm, f, args)]);
    else if (ft.kind === 'by_pk') pairs.push([f.key, byPkSelect(ctx, ft.tm, f, args)]);
    else pairs.push([f.key, aggregateSelect(ctx, ft.tm, f, args)]);
  }
  return pairs;
}
