/**
 * TypeInfo for types that are not built in (enums, domains, arrays of custom types,
 * extension types, composites, ranges), described from pg_type rows. Pure: the daemon runs
 * CATALOG_TYPES_SQL and passes the rows in through `lookup`.
 */
import { builtinType } from './builtin.ts';
import type { TypeInfo } from './types.ts';

/** One row of CATALOG_TYPES_SQL (pg_type ⋈ pg_namespace). */
export interface PgTypeRow {
  oid: number;
  nspname: string;
  typname: string;
  /** b base, c composite, d domain, e enum, p pseudo, r range, m multirange. */
  typtype: string;
  /** 'A' for arrays (and for int2vector/oidvector, which are built in). */
  typcategory: string;
  /** Element type of an array, 0 otherwise. */
  typelem: number;
  /** Delimiter between this type's values in an array literal (`;` for box). */
  typdelim: string;
  /** Base type of a domain, 0 otherwise. */
  typbasetype: number;
}

/**
 * Loads the rows for the OIDs in `$1` (an `oid[]` / int array) and, recursively, for every
 * type they refer to (array elements, domain base types), so that one round trip gives
 * `describeCatalogType` all it needs. node-postgres parses oid columns to numbers; the
 * "char" columns are cast to text so they arrive as one-character strings.
 */
export const CATALOG_TYPES_SQL = `
WITH RECURSIVE wanted(oid) AS (
  SELECT unnest($1::oid[])
  UNION
  SELECT x.ref
  FROM wanted w
  JOIN pg_catalog.pg_type t ON t.oid = w.oid
  CROSS JOIN LATERAL (VALUES (t.typelem), (t.typbasetype)) AS x(ref)
  WHERE x.ref <> 0
)
SELECT t.oid, n.nspname, t.typname, t.typtype::text AS typtype,
       t.typcategory::text AS typcategory, t.typelem,
       t.typdelim::text AS typdelim, t.typbasetype
FROM wanted w
JOIN pg_catalog.pg_type t ON t.oid = w.oid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
`;

/** Domains over domains over arrays… are shallow in practice; this only stops a cycle. */
const MAX_DEPTH = 32;

/**
 * Describes `oid`: built-in types from the built-in table, others from their pg_type row.
 * Unknown OIDs (no row) and types with no JSON counterpart are 'other': their text as a
 * JSON string, which is lossless.
 */
export function describeCatalogType(oid: number, lookup: (oid: number) => PgTypeRow | undefined): TypeInfo {
  return describe(oid, lookup, 0);
}

function describe(oid: number, lookup: (oid: number) => PgTypeRow | undefined, depth: number): TypeInfo {
  const builtin = builtinType(oid);
  if (builtin !== undefined) return builtin;
  const row = lookup(oid);
  if (row === undefined || depth > MAX_DEPTH) return { oid, name: row ? qualifiedName(row) : `oid ${oid}`, kind: 'other' };
  const name = qualifiedName(row);
  if (row.typtype === 'e') return { oid, name, kind: 'string' };
  if (row.typtype === 'd') {
    // A domain prints exactly as its base type.
    const base = describe(row.typbasetype, lookup, depth + 1);
    const info: TypeInfo = { oid, name, kind: base.kind };
    if (base.element !== undefined) info.element = base.element;
    if (base.delimiter !== undefined) info.delimiter = base.delimiter;
    return info;
  }
  if (isArray(row)) {
    const element = describe(row.typelem, lookup, depth + 1);
    // array_out separates elements with the *element* type's typdelim.
    const delimiter = lookup(row.typelem)?.typdelim ?? builtinDelimiter(row.typelem);
    return { oid, name, kind: 'array', element, delimiter };
  }
  // citext is an extension type, so it has no fixed OID and may live in any schema.
  if (row.typtype === 'b' && row.typname === 'citext') return { oid, name, kind: 'string' };
  return { oid, name, kind: 'other' };
}

/**
 * Array types: category 'A' with an element type and the `_` name Postgres gives array
 * types. The name check leaves out int2vector-like types, which print as plain lists.
 */
function isArray(row: PgTypeRow): boolean {
  return row.typcategory === 'A' && row.typelem !== 0 && row.typname.startsWith('_') && row.typtype === 'b';
}

/** Delimiter of a built-in element type, from the built-in array that holds it. */
function builtinDelimiter(elementOid: number): string {
  // box (603) is the only built-in type whose typdelim is not ','.
  return elementOid === 603 ? ';' : ',';
}

function qualifiedName(row: PgTypeRow): string {
  return row.nspname === 'pg_catalog' ? row.typname : `${row.nspname}.${row.typname}`;
}
