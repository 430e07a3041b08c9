/**
 * Built-in Postgres types known by OID, so the common case needs no catalog query. OIDs of
 * built-in types are fixed by Postgres (pg_type.dat) and were checked against a Postgres 15
 * server's pg_type; `scripts/capture-values.ts` records the OIDs it sees and the unit tests
 * compare them with this table.
 */
import type { TypeInfo, ValueKind } from './types.ts';

/** [oid, typname, kind, array type oid, array element delimiter when not ','] */
type Row = readonly [number, string, ValueKind, number, string?];

const ROWS: readonly Row[] = [
  [16, 'bool', 'bool', 1000],
  [21, 'int2', 'int', 1005],
  [23, 'int4', 'int', 1007],
  [20, 'int8', 'int', 1016],
  [26, 'oid', 'int', 1028],
  [28, 'xid', 'int', 1011],
  [29, 'cid', 'int', 1012],
  [5069, 'xid8', 'int', 271],
  [700, 'float4', 'float', 1021],
  [701, 'float8', 'float', 1022],
  [1700, 'numeric', 'numeric', 1231],
  [790, 'money', 'money', 791],
  [25, 'text', 'string', 1009],
  [1043, 'varchar', 'string', 1015],
  [1042, 'bpchar', 'string', 1014],
  [18, 'char', 'string', 1002],
  [19, 'name', 'string', 1003],
  [2950, 'uuid', 'string', 2951],
  [869, 'inet', 'string', 1041],
  [650, 'cidr', 'string', 651],
  [829, 'macaddr', 'string', 1040],
  [774, 'macaddr8', 'string', 775],
  [142, 'xml', 'string', 143],
  [1790, 'refcursor', 'string', 2201],
  [3220, 'pg_lsn', 'string', 3221],
  // reg* types print names (`orders`, `integer`), not numbers.
  [24, 'regproc', 'string', 1008],
  [2202, 'regprocedure', 'string', 2207],
  [2203, 'regoper', 'string', 2208],
  [2204, 'regoperator', 'string', 2209],
  [2205, 'regclass', 'string', 2210],
  [2206, 'regtype', 'string', 2211],
  [3734, 'regconfig', 'string', 3735],
  [3769, 'regdictionary', 'string', 3770],
  [4089, 'regnamespace', 'string', 4090],
  [4096, 'regrole', 'string', 4097],
  [4191, 'regcollation', 'string', 4192],
  [114, 'json', 'json', 199],
  [3802, 'jsonb', 'jsonb', 3807],
  [17, 'bytea', 'bytea', 1001],
  [1082, 'date', 'date', 1182],
  [1114, 'timestamp', 'timestamp', 1115],
  [1184, 'timestamptz', 'timestamptz', 1185],
  [1186, 'interval', 'interval', 1187],
  [1083, 'time', 'time', 1183],
  [1266, 'timetz', 'time', 1270],
  // Types with no JSON counterpart: the text as printed.
  [1560, 'bit', 'other', 1561],
  [1562, 'varbit', 'other', 1563],
  [27, 'tid', 'other', 1010],
  [600, 'point', 'other', 1017],
  [601, 'lseg', 'other', 1018],
  [602, 'path', 'other', 1019],
  [603, 'box', 'other', 1020, ';'],
  [604, 'polygon', 'other', 1027],
  [628, 'line', 'other', 629],
  [718, 'circle', 'other', 719],
  [3614, 'tsvector', 'other', 3643],
  [3615, 'tsquery', 'other', 3645],
  [4072, 'jsonpath', 'other', 4073],
  [1033, 'aclitem', 'other', 1034],
  [2970, 'txid_snapshot', 'other', 2949],
  [5038, 'pg_snapshot', 'other', 5039],
  // int2vector and oidvector print space-separated lists, not array literals, although
  // pg_type files them under category 'A'.
  [22, 'int2vector', 'other', 1006],
  [30, 'oidvector', 'other', 1013],
];

const BY_OID = new Map<number, TypeInfo>();
for (const [oid, name, kind, arrayOid, delimiter] of ROWS) {
  const element: TypeInfo = Object.freeze({ oid, name, kind });
  BY_OID.set(oid, element);
  BY_OID.set(
    arrayOid,
    Object.freeze({ oid: arrayOid, name: `_${name}`, kind: 'array', element, delimiter: delimiter ?? ',' }),
  );
}

/** The TypeInfo of a built-in type or built-in array type, or undefined when not built in. */
export function builtinType(oid: number): TypeInfo | undefined {
  return BY_OID.get(oid);
}

/** Every OID `builtinType` knows, for tests that compare the table with a server's pg_type. */
export function builtinOids(): number[] {
  return [...BY_OID.keys()];
}
