/**
 * Mutations → one parameterized statement each: the write in a CTE, then `affected_rows`,
 * `returning` (with relationships, through the role's select filter) and the permission
 * check built as JSON in the same statement.
 */
import { GraphQLError, GraphQLObjectType, getNamedType, type SelectionSetNode } from 'graphql/index.js';
import type { ColumnModel, TableModel } from './model.ts';
import { substituteSession, type BoolExp } from './permissions.ts';
import { boolExp, collectFields, ident, jsonObject, param, rowJson, selectFilter, tableRef, toParam, type CompileCtx } from './sql.ts';

export type Row = Record<string, unknown>; // Postgres column names

/** A value already in Postgres text form (a key read back from a row just written): bound as it is. */
export class PgText {
  constructor(readonly text: string | null) {}
}

/** The written row in Postgres text form (plus `walnats$ctid`), for the server's own use. */
export const TEXT_ROW = 'text-row' as const;

const bind = (ctx: CompileCtx, c: ColumnModel, v: unknown) => (v instanceof PgText ? param(ctx, v.text, c.sqlType) : param(ctx, toParam(c, v), c.sqlType));

export interface ReturningShape {
  /** Response type of `insert_x`/`update_x`/`delete_x`, or the row type for the `_one`/`_by_pk` forms. */
  type: GraphQLObjectType;
  sets: SelectionSetNode[];
  single: boolean;
}

/** GraphQL input object (GraphQL names) → row keyed by Postgres names. */
export function toRow(tm: TableModel, input: Record<string, unknown> | null | undefined): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(input ?? {})) {
    const c = tm.colByGql.get(k);
    if (!c) throw new GraphQLError(`unknown column ${k}`);
    out[c.name] = v;
  }
  return out;
}

function col(tm: TableModel, name: string): ColumnModel {
  const c = tm.colByPg.get(name);
  if (!c) throw new GraphQLError(`unknown column ${name} of ${tm.key}`);
  return c;
}

/** The `_m` column an upsert's DO UPDATE adds: true for a row it inserted, false for one it updated. */
const INSERTED = 'walnats$inserted';

/**
 * The statement's result from the rows in `_m`. `checkExp` is verified on every row, or, when
 * `updateCheck` is given (an upsert that may update), `checkExp` on the rows inserted
 * (`check_failed`) and `updateCheck` on the rows updated (`update_check_failed`).
 */
function output(ctx: CompileCtx, tm: TableModel, shape: ReturningShape | typeof TEXT_ROW, checkExp: BoolExp | null, affected?: number, updateCheck?: BoolExp | null): string {
  const upsert = updateCheck !== undefined;
  const failed = (exp: BoolExp | null, rows: string) =>
    exp ? `(SELECT count(*) FROM _m _c WHERE ${rows}NOT coalesce(${boolExp(ctx, tm, '_c', substituteSession(exp, ctx.session), 'permission')}, false))` : '0';
  const checks = upsert
    ? `${failed(checkExp, `_c.${ident(INSERTED)} AND `)}, 'update_check_failed', ${failed(updateCheck, `NOT _c.${ident(INSERTED)} AND `)}`
    : failed(checkExp, '');
  const count = affected === undefined ? '(SELECT count(*) FROM _m)' : String(affected);
  if (shape === TEXT_ROW) {
    return `SELECT json_build_object('row', (SELECT json_object_agg(_k.key, _k.value) FROM (SELECT * FROM _m LIMIT 1) _o, json_each_text(row_to_json(_o)) _k WHERE _k.key <> '${INSERTED}'), 'affected_rows', ${count}, 'check_failed', ${checks})::text AS data`;
  }
  const canSelect = !!ctx.access.table(tm.key)?.select;
  const filt = (a: string) => (canSelect ? selectFilter(ctx, tm, a) : 'false');
  if (shape.single) {
    const j = rowJson(ctx, tm, '_o', shape.type, shape.sets);
    return `SELECT json_build_object('row', (SELECT ${j} FROM _m _o WHERE ${filt('_o')} LIMIT 1), 'affected_rows', ${count}, 'check_failed', ${checks})::text AS data`;
  }
  const pairs: Array<[string, string]> = [];
  for (const f of collectFields(ctx, shape.type, shape.sets)) {
    if (f.name === 'affected_rows') pairs.push([f.key, count]);
    else if (f.name === 'returning') {
      const t = getNamedType(f.def.type) as GraphQLObjectType;
      const sets = f.nodes.map((n) => n.selectionSet!).filter(Boolean);
      pairs.push([f.key, `(SELECT coalesce(json_agg(${rowJson(ctx, tm, '_o', t, sets)}), '[]'::json) FROM _m _o WHERE ${filt('_o')})`]);
    }
  }
  return `SELECT json_build_object('row', ${jsonObject(pairs)}, 'affected_rows', ${count}, 'check_failed', ${checks})::text AS data`;
}

/**
 * The response of rows written by earlier statements of the request (nested inserts):
 * found again by primary key (or ctid), in the order given; `affected` is the count to report.
 */
export function compileReturning(ctx: CompileCtx, tm: TableModel, rows: Array<Record<string, string | null>>, shape: ReturningShape, affected: number): string {
  if (rows.length === 0) return `WITH _m AS (SELECT _t.* FROM ${tableRef(tm)} _t WHERE false) ${output(ctx, tm, shape, null, affected)}`;
  const pk = tm.cat.primaryKey;
  const keyCols = pk.length ? pk : ['walnats$ctid'];
  const values = rows.map((r, i) => `(${i}, ${keyCols.map((k) => (pk.length ? param(ctx, r[k], col(tm, k).sqlType) : param(ctx, r[k], 'tid'))).join(', ')})`).join(', ');
  const names = keyCols.map((_, i) => `_k${i}`);
  const on = keyCols.map((k, i) => `${pk.length ? `_t.${ident(k)}` : '_t.ctid'} = _keys.${names[i]}`).join(' AND ');
  return `WITH _m AS MATERIALIZED (SELECT _t.* FROM ${tableRef(tm)} _t JOIN (VALUES ${values}) _keys(_o, ${names.join(', ')}) ON ${on} ORDER BY _keys._o) ${output(ctx, tm, shape, null, affected)}`;
}

export function compileInsert(ctx: CompileCtx, tm: TableModel, rows: Row[], onConflict: Record<string, unknown> | undefined, shape: ReturningShape | typeof TEXT_ROW): string {
  const acc = ctx.access.table(tm.key)?.insert;
  if (!acc) throw new GraphQLError(`no insert permission on ${tm.base}`, { extensions: { code: 'permission-error' } });
  const preset = substituteSession(acc.set, ctx.session);
  const all = rows.map((r) => ({ ...r, ...preset }));
  const names = [...new Set(all.flatMap((r) => Object.keys(r)))];
  for (const n of names) if (!acc.columns.has(n) && !(n in preset) && !all.every((r) => !(n in r) || r[n] instanceof PgText)) throw new GraphQLError(`no insert permission on column ${n}`, { extensions: { code: 'permission-error' } });
  let values: string;
  let columns: string;
  if (names.length === 0) {
    const first = tm.columns[0];
    columns = `(${ident(first.name)})`;
    values = all.map(() => '(DEFAULT)').join(', ');
  } else {
    columns = `(${names.map(ident).join(', ')})`;
    values = all.map((r) => `(${names.map((n) => (n in r ? bind(ctx, col(tm, n), r[n]) : 'DEFAULT')).join(', ')})`).join(', ');
  }
  let conflict = '';
  let updateCheck: BoolExp | null | undefined;
  if (onConflict) {
    const constraint = ident(onConflict.constraint as string);
    const upd = (onConflict.update_columns as string[] | undefined) ?? [];
    if (upd.length === 0) conflict = ` ON CONFLICT ON CONSTRAINT ${constraint} DO NOTHING`;
    else {
      // The update path is an update_x: the role's update permission, its columns, filter
      // (on the existing row), presets (over the client's values) and check (on the new row).
      const uacc = ctx.access.table(tm.key)?.update;
      if (!uacc) throw new GraphQLError(`no update permission on ${tm.base}`, { extensions: { code: 'permission-error' } });
      for (const n of upd) if (!uacc.columns.has(n)) throw new GraphQLError(`no update permission on column ${n}`, { extensions: { code: 'permission-error' } });
      const upreset = substituteSession(uacc.set, ctx.session);
      const assigns = [
        ...upd.filter((n) => !(n in upreset)).map((n) => `${ident(col(tm, n).name)} = EXCLUDED.${ident(n)}`),
        ...Object.entries(upreset).map(([n, v]) => `${ident(n)} = ${param(ctx, toParam(col(tm, n), v), col(tm, n).sqlType)}`),
      ];
      const conds = [boolExp(ctx, tm, '_t', onConflict.where as BoolExp | undefined)];
      if (uacc.filter) conds.push(boolExp(ctx, tm, '_t', substituteSession(uacc.filter, ctx.session), 'permission'));
      conflict = ` ON CONFLICT ON CONSTRAINT ${constraint} DO UPDATE SET ${assigns.join(', ')} WHERE ${conds.join(' AND ')}`;
      updateCheck = uacc.check;
    }
  }
  // An upserted row was inserted when it has no xmax (an updated one is locked by this transaction).
  const ret = ['_t.*', ...(shape === TEXT_ROW ? ['_t.ctid AS "walnats$ctid"'] : []), ...(updateCheck !== undefined ? [`(_t.xmax = 0) AS ${ident(INSERTED)}`] : [])].join(', ');
  return `WITH _m AS (INSERT INTO ${tableRef(tm)} AS _t ${columns} VALUES ${values}${conflict} RETURNING ${ret}) ${output(ctx, tm, shape, acc.check, undefined, updateCheck)}`;
}

export function compileUpdate(ctx: CompileCtx, tm: TableModel, where: BoolExp | null, pk: Row | null, set: Row, inc: Row, shape: ReturningShape): string {
  const acc = ctx.access.table(tm.key)?.update;
  if (!acc) throw new GraphQLError(`no update permission on ${tm.base}`, { extensions: { code: 'permission-error' } });
  const preset = substituteSession(acc.set, ctx.session);
  const s = { ...set, ...preset };
  for (const n of [...Object.keys(set), ...Object.keys(inc)]) if (!acc.columns.has(n)) throw new GraphQLError(`no update permission on column ${n}`, { extensions: { code: 'permission-error' } });
  const assigns = [
    ...Object.entries(s).map(([n, v]) => `${ident(n)} = ${param(ctx, toParam(col(tm, n), v), col(tm, n).sqlType)}`),
    ...Object.entries(inc).filter(([n]) => !(n in s)).map(([n, v]) => `${ident(n)} = _t.${ident(n)} + ${param(ctx, toParam(col(tm, n), v), col(tm, n).sqlType)}`),
  ];
  if (assigns.length === 0) throw new GraphQLError('nothing to update: give _set or _inc');
  const conds = [where ? boolExp(ctx, tm, '_t', where) : 'true', ...pkConds(ctx, tm, pk)];
  if (acc.filter) conds.push(boolExp(ctx, tm, '_t', substituteSession(acc.filter, ctx.session), 'permission'));
  return `WITH _m AS (UPDATE ${tableRef(tm)} AS _t SET ${assigns.join(', ')} WHERE ${conds.join(' AND ')} RETURNING _t.*) ${output(ctx, tm, shape, acc.check)}`;
}

export function compileDelete(ctx: CompileCtx, tm: TableModel, where: BoolExp | null, pk: Row | null, shape: ReturningShape): string {
  const acc = ctx.access.table(tm.key)?.delete;
  if (!acc) throw new GraphQLError(`no delete permission on ${tm.base}`, { extensions: { code: 'permission-error' } });
  const conds = [where ? boolExp(ctx, tm, '_t', where) : 'true', ...pkConds(ctx, tm, pk)];
  if (acc.filter) conds.push(boolExp(ctx, tm, '_t', substituteSession(acc.filter, ctx.session), 'permission'));
  return `WITH _m AS (DELETE FROM ${tableRef(tm)} AS _t WHERE ${conds.join(' AND ')} RETURNING _t.*) ${output(ctx, tm, shape, null)}`;
}

function pkConds(ctx: CompileCtx, tm: TableModel, pk: Row | null): string[] {
  if (!pk) return [];
  return tm.cat.primaryKey.map((n) => {
    if (!(n in pk)) throw new GraphQLError(`primary key column ${n} missing`);
    return `_t.${ident(n)} = ${param(ctx, toParam(col(tm, n), pk[n]), col(tm, n).sqlType)}`;
  });
}
