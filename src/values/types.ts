/**
 * How a Postgres type's text output becomes JSON. Built-in types are known by OID; others
 * (enums, domains, arrays of custom types, composites) are described from pg_type.
 */
export type ValueKind =
  | 'bool'
  | 'int' // int2, int4, int8, oid, xid…: digits as printed
  | 'float' // float4, float8: number, or "NaN"/"Infinity"/"-Infinity" strings
  | 'numeric' // string as printed
  | 'money' // plain decimal string
  | 'string' // text-like: JSON string of the text
  | 'json' // spliced as sent
  | 'jsonb' // spliced as sent
  | 'bytea' // base64
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'interval'
  | 'time' // time, timetz: string as printed
  | 'array'
  | 'other'; // anything else: string as printed

export interface TypeInfo {
  oid: number;
  /** Type name, schema-qualified when not in pg_catalog. */
  name: string;
  kind: ValueKind;
  /** For arrays: the element type. */
  element?: TypeInfo;
  /** For arrays: the element delimiter (`,`, or `;` for box). */
  delimiter?: string;
}
