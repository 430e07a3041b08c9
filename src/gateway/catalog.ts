/**
 * Reads the Postgres catalog of the configured schemas: tables, views, columns, primary
 * keys, unique constraints, foreign keys, and which tables each view reads. Pure data out;
 * naming and GraphQL types are decided elsewhere.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';

export type RelKind = 'table' | 'partitioned_table' | 'view' | 'materialized_view' | 'foreign_table';

export interface CatalogColumn {
  name: string;
  attnum: number;
  /** Base type name (domains resolved), e.g. `int4`, `numeric`, `timestamptz`. For arrays, the element's. */
  type: string;
  /** Type category of the base type (pg_type.typcategory). */
  category: string;
  isArray: boolean;
  isEnum: boolean;
  /** SQL spelling of the column's own type for casts, e.g. `integer`, `public.mood[]`. */
  sqlType: string;
  nullable: boolean;
  hasDefault: boolean;
  generated: boolean;
}

export interface CatalogConstraint {
  name: string;
  columns: string[];
  primary: boolean;
}

export interface CatalogForeignKey {
  name: string;
  schema: string;
  table: string;
  columns: string[];
  refSchema: string;
  refTable: string;
  refColumns: string[];
}

export interface CatalogTable {
  oid: number;
  schema: string;
  name: string;
  kind: RelKind;
  columns: CatalogColumn[];
  primaryKey: string[];
  uniques: CatalogConstraint[];
  foreignKeys: CatalogForeignKey[];
  /** For views: the tables (schema, name) the view reads, transitively through other views. */
  reads: Array<{ schema: string; name: string }>;
  comment: string | null;
}

export interface Catalog {
  tables: CatalogTable[];
  /** Relations found but not exposed, with the reason (partitions, etc.). */
  skipped: Array<{ schema: string; name: string; reason: string }>;
  fingerprint: string;
}

const KINDS: Record<string, RelKind> = { r: 'table', p: 'partitioned_table', v: 'view', m: 'materialized_view', f: 'foreign_table' };

const RELS_SQL = `
SELECT c.oid::int8::text AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       c.relispartition AS is_partition, obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f')
 ORDER BY n.nspname, c.relname`;

const COLS_SQL = `
SELECT a.attrelid::int8::text AS oid, a.attname AS name, a.attnum AS attnum,
       NOT a.attnotnull AS nullable, a.atthasdef AS has_default, a.attgenerated <> '' AS generated,
       format_type(a.atttypid, NULL) AS sql_type,
       t.typcategory = 'A' AS is_array,
       bt.typname AS base_type, bt.typcategory::text AS category, bt.typtype = 'e' AS is_enum
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
  JOIN LATERAL (
    WITH RECURSIVE d(oid, depth) AS (
      SELECT coalesce(et.oid, t.oid), 0
      UNION ALL SELECT ty.typbasetype, d.depth + 1 FROM d JOIN pg_type ty ON ty.oid = d.oid WHERE ty.typtype = 'd' AND d.depth < 20
    ) SELECT ty.* FROM d JOIN pg_type ty ON ty.oid = d.oid ORDER BY d.depth DESC LIMIT 1
  ) bt ON true
 WHERE n.nspname = ANY($1) AND c.relkind IN ('r','p','v','m','f') AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum`;

const CONS_SQL = `
SELECT co.conrelid::int8::text AS oid, co.conname AS name, co.contype::text AS type,
       (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(co.conkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n) AS columns,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(co.confkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n) AS ref_columns
  FROM pg_constraint co
  JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class rc ON rc.oid = co.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
 WHERE n.nspname = ANY($1) AND co.contype IN ('p','u','f')
 ORDER BY co.conrelid, co.conname`;

// Tables read by each view (one level; resolved transitively below).
const DEPS_SQL = `
SELECT DISTINCT v.oid::int8::text AS oid, tn.nspname AS schema, t.relname AS name, t.relkind::text AS kind
  FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
  JOIN pg_rewrite r ON r.ev_class = v.oid
  JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
  JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE vn.nspname = ANY($1) AND v.relkind IN ('v','m')`;

type Queryable = Pick<pg.Pool, 'query'>;

export async function readCatalog(db: Queryable, schemas: string[]): Promise<Catalog> {
  const [rels, cols, cons, deps] = await Promise.all([
    db.query(RELS_SQL, [schemas]),
    db.query(COLS_SQL, [schemas]),
    db.query(CONS_SQL, [schemas]),
    db.query(DEPS_SQL, [schemas]),
  ]);
  const byOid = new Map<string, CatalogTable>();
  const skipped: Catalog['skipped'] = [];
  for (const r of rels.rows) {
    if (r.is_partition) {
      skipped.push({ schema: r.schema, name: r.name, reason: 'partition: reached through its partitioned table' });
      continue;
    }
    byOid.set(r.oid, {
      oid: Number(r.oid),
      schema: r.schema,
      name: r.name,
      kind: KINDS[r.kind],
      columns: [],
      primaryKey: [],
      uniques: [],
      foreignKeys: [],
      reads: [],
      comment: r.comment,
    });
  }
  for (const c of cols.rows) {
    const t = byOid.get(c.oid);
    if (!t) continue;
    t.columns.push({
      name: c.name,
      attnum: c.attnum,
      type: c.base_type,
      category: c.category,
      isArray: c.is_array,
      isEnum: c.is_enum,
      sqlType: c.sql_type,
      nullable: c.nullable,
      hasDefault: c.has_default,
      generated: c.generated,
    });
  }
  for (const c of cons.rows) {
    const t = byOid.get(c.oid);
    if (!t) continue;
    const columns = parseNameArray(c.columns);
    if (c.type === 'p') {
      t.primaryKey = columns;
      t.uniques.push({ name: c.name, columns, primary: true });
    } else if (c.type === 'u') {
      t.uniques.push({ name: c.name, columns, primary: false });
    } else if (c.ref_schema != null) {
      t.foreignKeys.push({
        name: c.name,
        schema: t.schema,
        table: t.name,
        columns,
        refSchema: c.ref_schema,
        refTable: c.ref_table,
        refColumns: parseNameArray(c.ref_columns),
      });
    }
  }
  // Views: tables read, transitively.
  const direct = new Map<string, Array<{ schema: string; name: string; kind: string }>>();
  for (const d of deps.rows) {
    if (!direct.has(d.oid)) direct.set(d.oid, []);
    direct.get(d.oid)!.push({ schema: d.schema, name: d.name, kind: d.kind });
  }
  const viewOidByName = new Map<string, string>();
  for (const [oid, t] of byOid) viewOidByName.set(`${t.schema}.${t.name}`, oid);
  for (const [oid, t] of byOid) {
    if (t.kind !== 'view' && t.kind !== 'materialized_view') continue;
    const seen = new Set<string>();
    const out: Array<{ schema: string; name: string }> = [];
    const walk = (o: string, depth: number) => {
      for (const d of direct.get(o) ?? []) {
        const key = `${d.schema}.${d.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if (d.kind === 'v' || d.kind === 'm') {
          const inner = viewOidByName.get(key);
          if (inner && depth < 20) walk(inner, depth + 1);
          if (d.kind === 'm') out.push({ schema: d.schema, name: d.name });
        } else out.push({ schema: d.schema, name: d.name });
      }
    };
    walk(oid, 0);
    t.reads = out;
  }
  const tables = [...byOid.values()];
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([rels.rows, cols.rows, cons.rows, deps.rows]))
    .digest('hex');
  return { tables, skipped, fingerprint };
}

/** node-postgres returns name[] as a JS array, but `{a,b}` text in some setups. */
function parseNameArray(v: unknown): string[] {
  if (v == null) return [];
  if (Array.isArray(v)) return v as string[];
  const s = String(v);
  if (s === '{}') return [];
  const out: string[] = [];
  let i = 1;
  while (i < s.length - 1) {
    if (s[i] === '"') {
      let j = i + 1;
      let cur = '';
      while (s[j] !== '"') {
        if (s[j] === '\\') j++;
        cur += s[j++];
      }
      out.push(cur);
      i = j + 2;
    } else {
      const j = s.indexOf(',', i);
      const end = j < 0 ? s.length - 1 : j;
      out.push(s.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}
