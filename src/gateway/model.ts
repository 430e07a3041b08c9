/**
 * The gateway's model of the database: catalog tables with their GraphQL names, scalar
 * kinds and relationships. Names are mapped deterministically (sanitized, then made unique
 * case-insensitively in catalog order: configured schema order, then byte order of names);
 * every mapping, collision and skipped relation is recorded in the report.
 */
import type { Catalog, CatalogColumn, CatalogTable } from './catalog.ts';

export type ScalarName =
  | 'Boolean' | 'Int' | 'String' | 'bigint' | 'numeric' | 'float8' | 'uuid' | 'json' | 'jsonb' | 'bytea'
  | 'date' | 'timestamp' | 'timestamptz' | 'time' | 'timetz' | 'interval';

export const SCALARS: ScalarName[] = ['Boolean', 'Int', 'String', 'bigint', 'numeric', 'float8', 'uuid', 'json', 'jsonb', 'bytea', 'date', 'timestamp', 'timestamptz', 'time', 'timetz', 'interval'];

export interface ColumnModel extends CatalogColumn {
  gql: string;
  scalar: ScalarName;
  /** GraphQL scalar type name: `scalar`, or `_<scalar>` for arrays. */
  typeName: string;
}

export interface RelModel {
  name: string;
  kind: 'object' | 'array';
  target: string; // table key
  /** [column of this table, column of target] pairs (Postgres names). */
  mapping: Array<[string, string]>;
  fk: string;
}

export interface TableModel {
  key: string; // `schema.name`
  schema: string;
  name: string;
  cat: CatalogTable;
  base: string;
  columns: ColumnModel[];
  colByGql: Map<string, ColumnModel>;
  colByPg: Map<string, ColumnModel>;
  rels: RelModel[];
  relByName: Map<string, RelModel>;
  /** Insert/update/delete are offered (base tables, partitioned and foreign tables). */
  writable: boolean;
  /** Tables whose change events concern this relation: itself, or what a view reads. */
  sources: string[];
}

export interface NameMapping {
  kind: 'table' | 'column' | 'relationship';
  schema: string;
  table: string;
  column?: string;
  relationship?: string;
  graphql: string;
  reason: string;
}

export interface NameMappingReport {
  tables: number;
  mappings: NameMapping[];
  collisions: Array<{ name: string; claimedBy: string; wanted: string; resolvedAs: string }>;
  skipped: Array<{ schema: string; name: string; reason: string }>;
}

export interface Model {
  tables: TableModel[];
  byKey: Map<string, TableModel>;
  report: NameMappingReport;
  fingerprint: string;
  schemas: string[];
}

const VALID = /^[_A-Za-z][_0-9A-Za-z]*$/;

export function sanitize(name: string): string {
  if (VALID.test(name) && !name.startsWith('__')) return name;
  let s = name.replace(/[^_0-9A-Za-z]/g, '_');
  if (s === '') s = '_';
  if (/^[0-9]/.test(s)) s = '_' + s;
  if (s.startsWith('__')) s = 'x' + s;
  return s;
}

export function scalarOf(c: Pick<CatalogColumn, 'type' | 'category' | 'isEnum'>): ScalarName {
  switch (c.type) {
    case 'bool': return 'Boolean';
    case 'int2': case 'int4': return 'Int';
    case 'int8': case 'oid': case 'xid8': return 'bigint';
    case 'float4': case 'float8': return 'float8';
    case 'numeric': case 'money': return 'numeric';
    case 'uuid': return 'uuid';
    case 'json': return 'json';
    case 'jsonb': return 'jsonb';
    case 'bytea': return 'bytea';
    case 'date': return 'date';
    case 'timestamp': return 'timestamp';
    case 'timestamptz': return 'timestamptz';
    case 'time': return 'time';
    case 'timetz': return 'timetz';
    case 'interval': return 'interval';
    default: return 'String';
  }
}

/** Table-derived GraphQL names (types and root fields), all claimed together. */
export function derivedNames(base: string): string[] {
  const types = ['', '_bool_exp', '_order_by', '_aggregate', '_aggregate_fields', '_sum_fields', '_avg_fields', '_min_fields',
    '_max_fields', '_insert_input', '_on_conflict', '_constraint', '_update_column', '_set_input', '_inc_input',
    '_mutation_response', '_pk_columns_input', '_select_column', '_event', '_event_row', '_by_pk', '_events'];
  return [...types.map((s) => base + s), 'insert_' + base, 'insert_' + base + '_one', 'update_' + base, 'update_' + base + '_by_pk', 'delete_' + base, 'delete_' + base + '_by_pk'];
}

/** Names that tables can never take. */
export function reservedNames(): string[] {
  const out = ['query_root', 'mutation_root', 'subscription_root', 'Float', 'ID', 'order_by', 'walnats_op', 'walnats_cursor',
    'walnats_event_source', 'walnats_aggregate_order_by', 'Query', 'Mutation', 'Subscription'];
  for (const s of SCALARS) out.push(s, '_' + s, s + '_comparison_exp', '_' + s + '_comparison_exp');
  return out;
}

export function buildModel(catalog: Catalog, schemas: string[]): Model {
  const report: NameMappingReport = { tables: 0, mappings: [], collisions: [], skipped: [...catalog.skipped] };
  const taken = new Map<string, string>(); // lower-case name → owner
  for (const r of reservedNames()) taken.set(r.toLowerCase(), 'built-in');
  const schemaIdx = (s: string) => schemas.indexOf(s);
  const sorted = [...catalog.tables].sort((a, b) =>
    schemaIdx(a.schema) - schemaIdx(b.schema) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const tables: TableModel[] = [];
  const byKey = new Map<string, TableModel>();
  for (const t of sorted) {
    const owner = `table ${t.schema}.${t.name}`;
    const wanted0 = t.schema === schemas[0] ? t.name : `${t.schema}_${t.name}`;
    const wanted = sanitize(wanted0);
    let base = wanted;
    let n = 1;
    const clash = (b: string) => derivedNames(b).find((x) => taken.has(x.toLowerCase()));
    let c = clash(base);
    while (c) {
      const claimedBy = taken.get(c.toLowerCase())!;
      n++;
      base = `${wanted}_${n}`;
      const next = clash(base);
      if (!next) report.collisions.push({ name: c, claimedBy, wanted: `${owner} as ${wanted}`, resolvedAs: base });
      c = next;
    }
    for (const d of derivedNames(base)) taken.set(d.toLowerCase(), owner);
    if (base !== t.name) {
      report.mappings.push({
        kind: 'table', schema: t.schema, table: t.name, graphql: base,
        reason: base !== wanted ? 'name collision' : wanted !== wanted0 ? 'not a valid GraphQL name' : 'schema prefix',
      });
    }
    // Columns.
    const colTaken = new Set<string>();
    const columns: ColumnModel[] = [];
    for (const col of t.columns) {
      const want = sanitize(col.name);
      let g = want;
      let k = 1;
      while (colTaken.has(g)) g = `${want}_${++k}`;
      colTaken.add(g);
      if (g !== col.name) {
        report.mappings.push({ kind: 'column', schema: t.schema, table: t.name, column: col.name, graphql: g,
          reason: g !== want ? 'name collision' : 'not a valid GraphQL name' });
      }
      const scalar = scalarOf(col);
      columns.push({ ...col, gql: g, scalar, typeName: col.isArray ? '_' + scalar : scalar });
    }
    const tm: TableModel = {
      key: `${t.schema}.${t.name}`, schema: t.schema, name: t.name, cat: t, base, columns,
      colByGql: new Map(columns.map((c) => [c.gql, c])), colByPg: new Map(columns.map((c) => [c.name, c])),
      rels: [], relByName: new Map(),
      writable: t.kind === 'table' || t.kind === 'partitioned_table' || t.kind === 'foreign_table',
      sources: t.kind === 'view' || t.kind === 'materialized_view' ? t.reads.map((r) => `${r.schema}.${r.name}`) : [`${t.schema}.${t.name}`],
    };
    tables.push(tm);
    byKey.set(tm.key, tm);
  }
  report.tables = tables.length;

  // Relationships from foreign keys, both ways, in a deterministic order.
  type Cand = { table: TableModel; rel: Omit<RelModel, 'name'>; wanted: string; alt: string };
  const cands: Cand[] = [];
  for (const t of tables) {
    for (const fk of [...t.cat.foreignKeys].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const target = byKey.get(`${fk.refSchema}.${fk.refTable}`);
      if (!target) {
        report.skipped.push({ schema: t.schema, name: `${t.name} → ${fk.refSchema}.${fk.refTable} (${fk.name})`, reason: 'foreign key to a table outside the configured schemas: no relationship' });
        continue;
      }
      const mapping = fk.columns.map((c, i) => [c, fk.refColumns[i]] as [string, string]);
      const colsPart = fk.columns.map(sanitize).join('_');
      const objWanted = fk.columns.length === 1 && /_id$/.test(fk.columns[0]) && fk.columns[0].length > 3 ? sanitize(fk.columns[0].slice(0, -3)) : target.base;
      cands.push({ table: t, rel: { kind: 'object', target: target.key, mapping, fk: fk.name }, wanted: objWanted, alt: `${target.base}_by_${colsPart}` });
      cands.push({ table: target, rel: { kind: 'array', target: t.key, mapping: mapping.map(([a, b]) => [b, a]), fk: fk.name }, wanted: t.base, alt: `${t.base}_by_${colsPart}` });
    }
  }
  const fieldTaken = new Map<TableModel, Set<string>>();
  for (const t of tables) fieldTaken.set(t, new Set(t.columns.map((c) => c.gql)));
  for (const c of cands) {
    const used = fieldTaken.get(c.table)!;
    const free = (n: string) => !used.has(n) && !(c.rel.kind === 'array' && used.has(n + '_aggregate')) && !used.has(n.replace(/_aggregate$/, ''));
    let name = c.wanted;
    if (!free(name)) name = c.alt;
    let k = 1;
    const alt = name;
    while (!free(name)) name = `${alt}_${++k}`;
    used.add(name);
    if (c.rel.kind === 'array') used.add(name + '_aggregate');
    if (name !== c.wanted) {
      report.collisions.push({ name: c.wanted, claimedBy: `a field of ${c.table.key}`, wanted: `${c.rel.kind} relationship ${c.table.key} (${c.rel.fk})`, resolvedAs: name });
    }
    report.mappings.push({ kind: 'relationship', schema: c.table.schema, table: c.table.name, relationship: name, graphql: name,
      reason: `${c.rel.kind} relationship from foreign key ${c.rel.fk}${name !== c.wanted ? ' (renamed: collision)' : ''}` });
    const rel: RelModel = { ...c.rel, name };
    c.table.rels.push(rel);
    c.table.relByName.set(name, rel);
  }
  return { tables, byKey, report, fingerprint: catalog.fingerprint, schemas };
}
