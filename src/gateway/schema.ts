/**
 * The GraphQL schema of one role, interpreted from the model at run time. Only what the
 * role may use exists in its schema (columns, relationships, operations), so column
 * permissions hold by validation before anything reaches a resolver.
 */
import {
  GraphQLBoolean, GraphQLEnumType, GraphQLInputObjectType, GraphQLInt, GraphQLList, GraphQLNonNull, GraphQLObjectType,
  GraphQLSchema, GraphQLString, type GraphQLFieldConfig, type GraphQLFieldConfigMap, type GraphQLInputFieldConfigMap,
  type GraphQLInputType, type GraphQLOutputType, type GraphQLResolveInfo, type ThunkObjMap,
} from 'graphql/index.js';
import type { ColumnModel, Model, TableModel } from './model.ts';
import type { RoleAccess } from './permissions.ts';
import { scalarType } from './scalars.ts';

export type RootKind = 'list' | 'by_pk' | 'aggregate';
export type MutationKind = 'insert' | 'insert_one' | 'update' | 'update_by_pk' | 'delete' | 'delete_by_pk';

/** What the schema's root resolvers call; implemented by the engine. */
export interface Engine {
  query(tm: TableModel, kind: RootKind, ctx: unknown, info: GraphQLResolveInfo): Promise<unknown>;
  cursor(ctx: unknown, info: GraphQLResolveInfo): Promise<string>;
  mutate(tm: TableModel, kind: MutationKind, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<unknown>;
  subscribeEvents(tm: TableModel, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<AsyncIterator<unknown>>;
  subscribeLive(tm: TableModel, kind: RootKind, args: Record<string, unknown>, ctx: unknown, info: GraphQLResolveInfo): Promise<AsyncIterator<unknown>>;
  /** A subscription's root field resolving one payload (returned as it is). */
  payload(payload: unknown, ctx: unknown): unknown;
}

export interface RoleSchema {
  schema: GraphQLSchema;
  /** Root query/subscription field name → table and kind. */
  roots: Map<string, { tm: TableModel; kind: RootKind }>;
}

const byKey = (src: unknown, _a: unknown, _c: unknown, info: GraphQLResolveInfo) =>
  src == null ? null : (src as Record<string, unknown>)[info.path.key as string];
const byName = (src: unknown, _a: unknown, _c: unknown, info: GraphQLResolveInfo) =>
  src == null ? null : (src as Record<string, unknown>)[info.fieldName];

const nn = <T extends GraphQLOutputType | GraphQLInputType>(t: T) => new GraphQLNonNull(t);
const list = <T extends GraphQLOutputType | GraphQLInputType>(t: T) => new GraphQLList(t);

const NUMERIC_SCALARS = new Set(['Int', 'bigint', 'numeric', 'float8']);
const ORDERED_SCALARS = new Set(['Int', 'bigint', 'numeric', 'float8', 'date', 'timestamp', 'timestamptz', 'time', 'timetz', 'interval']);
const TEXT_SCALARS = new Set(['String']);

export function buildRoleSchema(model: Model, access: RoleAccess, engine: Engine): RoleSchema {
  const roots = new Map<string, { tm: TableModel; kind: RootKind }>();
  const orderByEnum = new GraphQLEnumType({
    name: 'order_by',
    description: 'Sort direction. asc: nulls last; desc: nulls first.',
    values: Object.fromEntries(['asc', 'asc_nulls_first', 'asc_nulls_last', 'desc', 'desc_nulls_first', 'desc_nulls_last'].map((v) => [v, { value: v }])),
  });
  const opEnum = new GraphQLEnumType({
    name: 'walnats_op',
    values: { INSERT: { value: 'INSERT' }, UPDATE: { value: 'UPDATE' }, DELETE: { value: 'DELETE' }, TRUNCATE: { value: 'TRUNCATE' }, READ: { value: 'READ', description: 'snapshot/backfill row' } },
  });
  const cmpTypes = new Map<string, GraphQLInputObjectType>();
  const cmpType = (c: ColumnModel) => {
    const name = `${c.typeName}_comparison_exp`;
    let t = cmpTypes.get(name);
    if (!t) {
      const s = scalarType(c.typeName);
      const fields: GraphQLInputFieldConfigMap = {
        _eq: { type: s }, _neq: { type: s }, _gt: { type: s }, _gte: { type: s }, _lt: { type: s }, _lte: { type: s },
        _is_null: { type: GraphQLBoolean },
      };
      if (!c.isArray) {
        fields._in = { type: list(nn(s)) };
        fields._nin = { type: list(nn(s)) };
      }
      if (TEXT_SCALARS.has(c.typeName)) {
        for (const op of ['_like', '_nlike', '_ilike', '_nilike']) fields[op] = { type: GraphQLString };
      }
      t = new GraphQLInputObjectType({ name, fields });
      cmpTypes.set(name, t);
    }
    return t;
  };

  const sel = (tm: TableModel) => access.table(tm.key)?.select;
  const visible = model.tables.filter((tm) => {
    const a = access.table(tm.key);
    return a && (a.select || a.insert || a.update || a.delete);
  });
  const selCols = (tm: TableModel) => tm.columns.filter((c) => sel(tm)?.columns.has(c.name));
  const selRels = (tm: TableModel) => tm.rels.filter((r) => sel(model.byKey.get(r.target)!));

  const rowTypes = new Map<string, GraphQLObjectType>();
  const boolExps = new Map<string, GraphQLInputObjectType>();
  const orderBys = new Map<string, GraphQLInputObjectType>();
  const aggTypes = new Map<string, GraphQLObjectType>();
  const selectColumnEnums = new Map<string, GraphQLEnumType>();

  const listArgs = (tm: TableModel) => {
    const args: Record<string, { type: GraphQLInputType; description?: string }> = {
      where: { type: boolExps.get(tm.key)! },
      order_by: { type: list(nn(orderBys.get(tm.key)!)) },
      limit: { type: GraphQLInt },
      offset: { type: GraphQLInt },
    };
    const sc = selectColumnEnums.get(tm.key);
    if (sc) args.distinct_on = { type: list(nn(sc)), description: 'DISTINCT ON these columns (they lead the sort order)' };
    return args;
  };

  // Pass 1: selectable tables get row, bool_exp, order_by, aggregate types.
  for (const tm of visible) {
    if (!sel(tm)) continue;
    const B = tm.base;
    const cols = selCols(tm);
    if (cols.length) {
      selectColumnEnums.set(tm.key, new GraphQLEnumType({
        name: `${B}_select_column`,
        values: Object.fromEntries(cols.map((c) => [c.gql, { value: c.name, description: c.gql !== c.name ? `column "${c.name}"` : undefined }])),
      }));
    }
    boolExps.set(tm.key, new GraphQLInputObjectType({
      name: `${B}_bool_exp`,
      description: `Filter on ${tm.key}. Keys combine with AND; relationships match when a related row matches.`,
      fields: () => {
        const f: GraphQLInputFieldConfigMap = {
          _and: { type: list(nn(boolExps.get(tm.key)!)) },
          _or: { type: list(nn(boolExps.get(tm.key)!)) },
          _not: { type: boolExps.get(tm.key)! },
        };
        for (const c of cols) f[c.gql] = { type: cmpType(c) }; // json too: compared as jsonb in SQL
        for (const r of selRels(tm)) f[r.name] = { type: boolExps.get(r.target)! };
        return f;
      },
    }));
    orderBys.set(tm.key, new GraphQLInputObjectType({
      name: `${B}_order_by`,
      fields: () => {
        const f: GraphQLInputFieldConfigMap = {};
        for (const c of cols) f[c.gql] = { type: orderByEnum };
        for (const r of selRels(tm)) {
          if (r.kind === 'object') f[r.name] = { type: orderBys.get(r.target)! };
          else f[r.name + '_aggregate'] = { type: aggOrderBy };
        }
        return f;
      },
    }));
    rowTypes.set(tm.key, new GraphQLObjectType({
      name: B,
      description: `${tm.cat.kind.replace('_', ' ')} ${tm.key}${tm.cat.comment ? ': ' + tm.cat.comment : ''}`,
      fields: () => {
        const f: GraphQLFieldConfigMap<unknown, unknown> = {};
        for (const c of cols) {
          f[c.gql] = { type: c.nullable || tm.cat.kind === 'view' ? scalarType(c.typeName) : nn(scalarType(c.typeName)), resolve: byKey,
            description: c.gql !== c.name ? `column "${c.name}"` : undefined };
        }
        for (const r of selRels(tm)) {
          const target = model.byKey.get(r.target)!;
          if (r.kind === 'object') {
            f[r.name] = { type: rowTypes.get(r.target)!, resolve: byKey, description: `object relationship (${r.fk})` };
          } else {
            f[r.name] = { type: nn(list(nn(rowTypes.get(r.target)!))), args: listArgs(target), resolve: byKey, description: `array relationship (${r.fk})` };
            if (aggTypes.has(r.target)) f[r.name + '_aggregate'] = { type: nn(aggTypes.get(r.target)!), args: listArgs(target), resolve: byKey };
          }
        }
        if (Object.keys(f).length === 0) f._no_columns = { type: GraphQLString, resolve: () => null, description: 'this role sees no column of the table' };
        return f;
      },
    }));
    if (sel(tm)!.aggregations) {
      const numCols = cols.filter((c) => !c.isArray && NUMERIC_SCALARS.has(c.scalar));
      const ordCols = cols.filter((c) => !c.isArray && (ORDERED_SCALARS.has(c.scalar) || (c.scalar === 'String' && (c.category === 'S' || c.isEnum))));
      const fieldsOf = (cs: ColumnModel[], t: (c: ColumnModel) => GraphQLOutputType) =>
        Object.fromEntries(cs.map((c) => [c.gql, { type: t(c), resolve: byKey }]));
      const aggFields: GraphQLFieldConfigMap<unknown, unknown> = {
        count: { type: nn(GraphQLInt), resolve: byKey, args: selectColumnEnums.get(tm.key) ? { columns: { type: list(nn(selectColumnEnums.get(tm.key)!)) }, distinct: { type: GraphQLBoolean } } : {} },
      };
      if (numCols.length) {
        aggFields.sum = { type: new GraphQLObjectType({ name: `${B}_sum_fields`, fields: fieldsOf(numCols, (c) => scalarType(c.scalar === 'float8' ? 'float8' : 'numeric')) }), resolve: byKey };
        aggFields.avg = { type: new GraphQLObjectType({ name: `${B}_avg_fields`, fields: fieldsOf(numCols, (c) => scalarType(c.scalar === 'float8' ? 'float8' : 'numeric')) }), resolve: byKey };
      }
      if (ordCols.length) {
        aggFields.min = { type: new GraphQLObjectType({ name: `${B}_min_fields`, fields: fieldsOf(ordCols, (c) => scalarType(c.typeName)) }), resolve: byKey };
        aggFields.max = { type: new GraphQLObjectType({ name: `${B}_max_fields`, fields: fieldsOf(ordCols, (c) => scalarType(c.typeName)) }), resolve: byKey };
      }
      const fieldsType = new GraphQLObjectType({ name: `${B}_aggregate_fields`, fields: aggFields });
      aggTypes.set(tm.key, new GraphQLObjectType({
        name: `${B}_aggregate`,
        fields: () => ({
          aggregate: { type: fieldsType, resolve: byKey },
          nodes: { type: nn(list(nn(rowTypes.get(tm.key)!))), resolve: byKey },
        }),
      }));
    }
  }
  const aggOrderBy = new GraphQLInputObjectType({ name: 'walnats_aggregate_order_by', description: 'Order by the number of related rows.', fields: { count: { type: orderByEnum } } });

  const query: ThunkObjMap<GraphQLFieldConfig<unknown, unknown>> = {};
  const subscription: ThunkObjMap<GraphQLFieldConfig<unknown, unknown>> = {};
  const mutation: ThunkObjMap<GraphQLFieldConfig<unknown, unknown>> = {};

  const pkArgs = (tm: TableModel) =>
    Object.fromEntries(tm.cat.primaryKey.map((pk) => {
      const c = tm.colByPg.get(pk)!;
      return [c.gql, { type: nn(scalarType(c.typeName)) as GraphQLInputType }];
    }));

  // Insert inputs and on_conflict types first: nested inserts refer to other tables' ones.
  const writeCols = (tm: TableModel, s: Set<string>) => tm.columns.filter((c) => s.has(c.name) && !c.generated);
  const insertInputs = new Map<string, GraphQLInputObjectType>();
  const conflictTypes = new Map<string, GraphQLInputObjectType>();
  const relInputs = new Map<string, GraphQLInputObjectType>();
  for (const tm of visible) {
    const a = access.table(tm.key)!;
    if (!tm.writable || !a.insert) continue;
    const cols = writeCols(tm, a.insert.columns);
    if (!cols.length) continue;
    const B = tm.base;
    const row = rowTypes.get(tm.key);
    const updCols = a.update ? writeCols(tm, a.update.columns) : [];
    if (tm.cat.uniques.length && updCols.length) {
      conflictTypes.set(tm.key, new GraphQLInputObjectType({
        name: `${B}_on_conflict`,
        fields: () => ({
          constraint: { type: nn(new GraphQLEnumType({ name: `${B}_constraint`, values: Object.fromEntries(tm.cat.uniques.map((u) => [sanitizeEnum(u.name), { value: u.name, description: `${u.primary ? 'primary key' : 'unique'} (${u.columns.join(', ')})` }])) })) },
          update_columns: { type: nn(list(nn(new GraphQLEnumType({ name: `${B}_update_column`, values: Object.fromEntries(updCols.map((c) => [c.gql, { value: c.name }])) })))), defaultValue: [] },
          where: row ? { type: boolExps.get(tm.key)! } : { type: GraphQLBoolean, description: 'unavailable' },
        }),
      }));
    }
    insertInputs.set(tm.key, new GraphQLInputObjectType({
      name: `${B}_insert_input`,
      fields: () => {
        const f: GraphQLInputFieldConfigMap = Object.fromEntries(cols.map((c) => [c.gql, { type: scalarType(c.typeName) }]));
        for (const r of tm.rels) {
          const target = model.byKey.get(r.target)!;
          if (!insertInputs.has(r.target) || f[r.name]) continue;
          // The key columns the relationship sets must be writable, by the role or not (they come
          // from the row inserted with it), but not generated.
          const sets = r.kind === 'object' ? r.mapping.map(([p]) => tm.colByPg.get(p)) : r.mapping.map(([, c]) => target.colByPg.get(c));
          if (sets.some((c) => !c || c.generated)) continue;
          const name = `${target.base}_${r.kind === 'object' ? 'obj' : 'arr'}_rel_insert_input`;
          let t = relInputs.get(name);
          if (!t) {
            const data = insertInputs.get(r.target)!;
            const conflict = conflictTypes.get(r.target);
            t = new GraphQLInputObjectType({
              name,
              description: `nested insert of ${r.kind === 'object' ? 'the related row, inserted first' : 'related rows, inserted after this one'}, in the same transaction`,
              fields: { data: { type: r.kind === 'object' ? nn(data) : nn(list(nn(data))) }, ...(conflict ? { on_conflict: { type: conflict } } : {}) },
            });
            relInputs.set(name, t);
          }
          f[r.name] = { type: t, description: `${r.kind} relationship (${r.fk})` };
        }
        return f;
      },
    }));
  }

  for (const tm of visible) {
    const B = tm.base;
    const a = access.table(tm.key)!;
    const row = rowTypes.get(tm.key);
    const hasPk = tm.cat.primaryKey.length > 0 && tm.cat.primaryKey.every((pk) => a.select?.columns.has(pk));
    if (row) {
      const reads: Array<[string, RootKind, GraphQLFieldConfig<unknown, unknown>]> = [
        [B, 'list', { type: nn(list(nn(row))), args: listArgs(tm), description: `rows of ${tm.key}` }],
      ];
      if (hasPk) reads.push([`${B}_by_pk`, 'by_pk', { type: row, args: pkArgs(tm), description: `one row of ${tm.key} by primary key` }]);
      if (aggTypes.has(tm.key)) reads.push([`${B}_aggregate`, 'aggregate', { type: nn(aggTypes.get(tm.key)!), args: listArgs(tm) }]);
      for (const [name, kind, cfg] of reads) {
        roots.set(name, { tm, kind });
        query[name] = { ...cfg, resolve: (_s, _a, ctx, info) => engine.query(tm, kind, ctx, info) };
        subscription[name] = {
          ...cfg,
          description: `live query: ${cfg.description ?? name}; re-runs when a table it reads changes`,
          subscribe: (_s, args, ctx, info) => engine.subscribeLive(tm, kind, args, ctx, info) as unknown as AsyncIterable<unknown>,
          resolve: (payload, _a, ctx) => engine.payload(payload, ctx),
        };
      }
      if (tm.cat.kind !== 'view' && tm.cat.kind !== 'materialized_view') {
        const cols = selCols(tm);
        const evRow = new GraphQLObjectType({
          name: `${B}_event_row`,
          fields: () => {
            const f: GraphQLFieldConfigMap<unknown, unknown> = {};
            for (const c of cols) f[c.gql] = { type: scalarType(c.typeName), resolve: byName };
            if (!cols.length) f._no_columns = { type: GraphQLString, resolve: () => null };
            return f;
          },
        });
        const ev = new GraphQLObjectType({
          name: `${B}_event`,
          description: `A change of ${tm.key} from the JetStream stream.`,
          fields: {
            op: { type: nn(opEnum), resolve: byName },
            old: { type: evRow, resolve: byName, description: 'row before: as the replica identity gives it (key columns only under the default identity); null on insert' },
            new: { type: evRow, resolve: byName, description: 'row after; null on delete. Unchanged TOASTed columns are null here and listed in `unchanged`' },
            unchanged: { type: list(nn(GraphQLString)), resolve: byName },
            cursor: { type: nn(GraphQLString), resolve: byName, description: 'pass as `from:` to resume right after this event' },
            commit_time: { type: scalarType('timestamptz'), resolve: byName },
            commit_lsn: { type: GraphQLString, resolve: byName },
            seq: { type: GraphQLInt, resolve: byName, description: 'position of the change within its transaction' },
          },
        });
        subscription[`${B}_events`] = {
          type: nn(ev),
          description: `change events of ${tm.key}, filtered by \`where\` (on the new row; the old one for deletes)`,
          args: {
            where: { type: boolExps.get(tm.key)! },
            ops: { type: list(nn(opEnum)) },
            from: { type: GraphQLString, description: 'a cursor from an event or from walnats_cursor: resume right after it' },
          },
          subscribe: (_s, args, ctx, info) => engine.subscribeEvents(tm, args, ctx, info) as unknown as AsyncIterable<unknown>,
          resolve: (payload, _a, ctx) => engine.payload(payload, ctx),
        };
      }
    }
    if (!tm.writable) continue;
    const response = new GraphQLObjectType({
      name: `${B}_mutation_response`,
      fields: () => {
        const f: GraphQLFieldConfigMap<unknown, unknown> = { affected_rows: { type: nn(GraphQLInt), resolve: byKey } };
        if (row) f.returning = { type: nn(list(nn(row))), resolve: byKey };
        return f;
      },
    });
    const one = row ?? GraphQLString;
    if (a.insert) {
      const input = insertInputs.get(tm.key);
      if (input) {
        const args: Record<string, { type: GraphQLInputType; defaultValue?: unknown }> = { objects: { type: nn(list(nn(input))) } };
        const conflict = conflictTypes.get(tm.key);
        if (conflict) args.on_conflict = { type: conflict };
        mutation[`insert_${B}`] = { type: response, args, resolve: (_s, args, ctx, info) => engine.mutate(tm, 'insert', args, ctx, info) };
        mutation[`insert_${B}_one`] = {
          type: one,
          args: { object: { type: nn(input) }, ...(args.on_conflict ? { on_conflict: args.on_conflict } : {}) },
          resolve: (_s, args, ctx, info) => engine.mutate(tm, 'insert_one', args, ctx, info),
        };
      }
    }
    if (a.update) {
      const cols = writeCols(tm, a.update.columns);
      const numCols = cols.filter((c) => !c.isArray && NUMERIC_SCALARS.has(c.scalar));
      if (cols.length && row) {
        const args: Record<string, { type: GraphQLInputType }> = {
          _set: { type: new GraphQLInputObjectType({ name: `${B}_set_input`, fields: Object.fromEntries(cols.map((c) => [c.gql, { type: scalarType(c.typeName) }])) }) },
        };
        if (numCols.length) args._inc = { type: new GraphQLInputObjectType({ name: `${B}_inc_input`, fields: Object.fromEntries(numCols.map((c) => [c.gql, { type: scalarType(c.typeName) }])) }) };
        mutation[`update_${B}`] = { type: response, args: { where: { type: nn(boolExps.get(tm.key)!) }, ...args }, resolve: (_s, args, ctx, info) => engine.mutate(tm, 'update', args, ctx, info) };
        if (hasPk) {
          const pkInput = new GraphQLInputObjectType({ name: `${B}_pk_columns_input`, fields: pkArgs(tm) });
          mutation[`update_${B}_by_pk`] = { type: one, args: { pk_columns: { type: nn(pkInput) }, ...args }, resolve: (_s, args, ctx, info) => engine.mutate(tm, 'update_by_pk', args, ctx, info) };
        }
      }
    }
    if (a.delete && row) {
      mutation[`delete_${B}`] = { type: response, args: { where: { type: nn(boolExps.get(tm.key)!) } }, resolve: (_s, args, ctx, info) => engine.mutate(tm, 'delete', args, ctx, info) };
      if (hasPk) mutation[`delete_${B}_by_pk`] = { type: one, args: pkArgs(tm), resolve: (_s, args, ctx, info) => engine.mutate(tm, 'delete_by_pk', args, ctx, info) };
    }
  }

  query.walnats_cursor = {
    type: nn(GraphQLString),
    description: 'The stream position at which the other fields of this query read their data. Pass it as `from:` to a `<table>_events` subscription: nothing is lost, and changes already in this data are skipped.',
    resolve: (_s, _a, ctx, info) => engine.cursor(ctx, info),
  };
  const schema = new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'query_root', fields: query }),
    mutation: Object.keys(mutation).length ? new GraphQLObjectType({ name: 'mutation_root', fields: mutation }) : undefined,
    subscription: Object.keys(subscription).length ? new GraphQLObjectType({ name: 'subscription_root', fields: subscription }) : undefined,
  });
  return { schema, roots };
}

function sanitizeEnum(name: string): string {
  const s = name.replace(/[^_0-9A-Za-z]/g, '_');
  const t = /^[0-9]/.test(s) ? '_' + s : s;
  return ['true', 'false', 'null'].includes(t) ? t + '_' : t;
}
