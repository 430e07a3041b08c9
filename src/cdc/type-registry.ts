/**
 * Knows how to convert every column type the slot sends: built-in types from the static
 * table, others (enums, domains, arrays of custom types, extension types) described once from
 * pg_type through a plain connection, before the first event that needs them is built.
 */
import type pg from 'pg';
import { builtinType, CATALOG_TYPES_SQL, describeCatalogType, textToJson, type PgTypeRow } from '../values/index.ts';
import type { TypeInfo } from '../values/types.ts';
import type { Relation } from '../decoder/types.ts';

export interface TypeRegistry {
  /** Loads descriptions for the relation's column types that are not known yet. */
  prepare(relation: Relation): Promise<void>;
  /** Synchronous: must only be called for types `prepare` has seen. */
  convert(text: string, typeOid: number): string;
  describe(typeOid: number): TypeInfo;
}

export function createTypeRegistry(catalog: () => pg.Client): TypeRegistry {
  const known = new Map<number, TypeInfo>();
  const describe = (oid: number): TypeInfo => {
    let t = known.get(oid) ?? builtinType(oid);
    if (!t) {
      // Not prepared: text as a JSON string is lossless, and `prepare` normally prevents this.
      t = { oid, name: `oid:${oid}`, kind: 'other' };
    }
    return t;
  };
  return {
    async prepare(relation) {
      const missing = relation.columns.map((c) => c.typeOid).filter((oid) => !known.has(oid) && !builtinType(oid));
      if (missing.length === 0) return;
      const rows = (await catalog().query<PgTypeRow>(CATALOG_TYPES_SQL, [missing])).rows;
      const byOid = new Map(rows.map((r) => [Number(r.oid), { ...r, oid: Number(r.oid), typelem: Number(r.typelem), typbasetype: Number(r.typbasetype) }]));
      for (const oid of missing) known.set(oid, describeCatalogType(oid, (o) => byOid.get(o)));
    },
    convert(text, typeOid) {
      return textToJson(text, describe(typeOid));
    },
    describe,
  };
}
