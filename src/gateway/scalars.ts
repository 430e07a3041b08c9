/**
 * Custom scalars that keep Postgres values lossless. Output values come from Postgres's own
 * JSON (built in SQL, int8/numeric cast to text first) or from CDC event bodies; both are
 * normalized to the event format of DESIGN §3 (timestamptz in UTC with `Z`).
 */
import { GraphQLBoolean, GraphQLError, GraphQLInt, GraphQLScalarType, GraphQLString, Kind, type ValueNode } from 'graphql/index.js';
import type { ScalarName } from './model.ts';
import { exactNumber } from './json.ts';
import { astronomicalYear } from '../values/convert.ts';

function literal(ast: ValueNode, variables?: Record<string, unknown> | null, numbers = false): unknown {
  switch (ast.kind) {
    case Kind.INT:
    case Kind.FLOAT:
      return numbers ? exactNumber(ast.value) : ast.value; // exact digits: as text, or as a JsonNumber in JSON
    case Kind.STRING:
    case Kind.ENUM:
      return ast.value;
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return ast.values.map((v) => literal(v, variables, numbers));
    case Kind.OBJECT:
      return Object.fromEntries(ast.fields.map((f) => [f.name.value, literal(f.value, variables, numbers)]));
    case Kind.VARIABLE:
      return variables?.[ast.name.value];
  }
}

const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(NaN|Infinity)$/;
const INTEGER = /^[+-]?\d+$/;

function decimalScalar(name: string, description: string, integer: boolean): GraphQLScalarType {
  const check = (v: unknown): string => {
    const s = typeof v === 'number' ? String(v) : typeof v === 'bigint' ? v.toString() : v;
    if (typeof s !== 'string' || !(integer ? INTEGER : NUMERIC).test(s.trim())) {
      throw new GraphQLError(`${name} cannot represent ${JSON.stringify(v)}`);
    }
    if (integer && typeof v === 'number' && !Number.isSafeInteger(v)) {
      throw new GraphQLError(`${name}: ${v} is beyond 2^53; pass it as a string to keep its digits`);
    }
    return s.trim();
  };
  return new GraphQLScalarType({
    name,
    description,
    serialize: (v) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'bigint' ? String(v) : v),
    parseValue: check,
    parseLiteral: (ast) => {
      if (ast.kind !== Kind.INT && ast.kind !== Kind.FLOAT && ast.kind !== Kind.STRING) throw new GraphQLError(`${name} expects a number or a string`);
      return check(ast.value);
    },
  });
}

function stringScalar(name: string, description: string, normalize: (s: string) => string = (s) => s, validate?: (s: string) => boolean, input: (s: string) => string = (s) => s): GraphQLScalarType {
  return new GraphQLScalarType({
    name,
    description,
    serialize: (v) => (typeof v === 'string' ? normalize(v) : v),
    parseValue: (v) => {
      if (typeof v !== 'string' || (validate && !validate(v))) throw new GraphQLError(`${name} cannot represent ${JSON.stringify(v)}`);
      return input(v);
    },
    parseLiteral: (ast) => {
      if (ast.kind !== Kind.STRING || (validate && !validate(ast.value))) throw new GraphQLError(`${name} expects a string`);
      return input(ast.value);
    },
  });
}

/**
 * Postgres's JSON of dates and timestamps → docs/values.md: BC values (`0044-03-15 BC`,
 * `0044-03-15T12:00:00+00:00 BC`) in astronomical year numbering (`-0043-03-15`), and with
 * `zone`, UTC written `Z`.
 */
function pgDate(s: string, zone = false): string {
  let bc = false;
  if (s.endsWith(' BC')) {
    bc = true;
    s = s.slice(0, -3);
  }
  if (zone) s = s.replace(/\+00(:00)?$/, 'Z');
  if (!bc) return s;
  const m = /^(\d{4,})(-.*)$/.exec(s);
  if (!m) return s;
  return astronomicalYear(s, m[1].length) + m[2]; // as change events write it (values/convert.ts)
}
const utc = (s: string) => pgDate(s, true);
const plainDate = (s: string) => pgDate(s);

/** Input in astronomical year numbering (`-0043-03-15…`, `0000-12-31`) → Postgres's ` BC` form. */
export function bcInput(s: string): string {
  const m = /^(-?)(\d{4,})(-\d\d-\d\d.*)$/.exec(s.trim());
  if (!m) return s;
  const year = m[1] ? -Number(m[2]) : Number(m[2]);
  if (year > 0) return s;
  return `${String(1 - year).padStart(4, '0')}${m[3]} BC`;
}

export const bigintScalar = decimalScalar('bigint', 'Postgres int8. Output as a string of exact digits; input as a string or an integer.', true);
export const numericScalar = decimalScalar('numeric', 'Postgres numeric (and money). Output as a string exactly as Postgres prints it, scale kept; input as a string or a number.', false);
export const float8Scalar = new GraphQLScalarType({
  name: 'float8',
  description: 'Postgres float4/float8: a JSON number in shortest round-trip form, or "NaN", "Infinity", "-Infinity".',
  serialize: (v) => v,
  parseValue: (v) => {
    if (typeof v === 'number' || (typeof v === 'string' && NUMERIC.test(v))) return String(v);
    throw new GraphQLError(`float8 cannot represent ${JSON.stringify(v)}`);
  },
  parseLiteral: (ast) => {
    if (ast.kind === Kind.INT || ast.kind === Kind.FLOAT || (ast.kind === Kind.STRING && NUMERIC.test(ast.value))) return ast.value;
    throw new GraphQLError('float8 expects a number');
  },
});
const jsonScalar = (name: string) =>
  new GraphQLScalarType({
    name,
    description: `Postgres ${name}: any JSON value.`,
    serialize: (v) => v,
    parseValue: (v) => v,
    parseLiteral: (ast, vars) => literal(ast, vars, true),
  });
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$|^\{[0-9a-f-]{32,36}\}$/i;

export const SCALAR_TYPES: Record<ScalarName, GraphQLScalarType> = {
  Boolean: GraphQLBoolean,
  Int: GraphQLInt,
  String: GraphQLString,
  bigint: bigintScalar,
  numeric: numericScalar,
  float8: float8Scalar,
  uuid: stringScalar('uuid', 'Postgres uuid.', (s) => s, (s) => UUID.test(s)),
  json: jsonScalar('json'),
  jsonb: jsonScalar('jsonb'),
  bytea: stringScalar('bytea', 'Postgres bytea as base64 (standard alphabet, padded).', (s) => s, (s) => /^[A-Za-z0-9+/]*={0,2}$/.test(s)),
  date: stringScalar('date', 'Postgres date, `2024-02-29`; `infinity`, `-infinity`; BC in astronomical years (`-0043-03-15` is 44 BC).', plainDate, undefined, bcInput),
  timestamp: stringScalar('timestamp', 'Postgres timestamp without time zone, ISO 8601, microseconds kept; BC in astronomical years.', plainDate, undefined, bcInput),
  timestamptz: stringScalar('timestamptz', 'Postgres timestamptz, ISO 8601 in UTC (`Z`), microseconds kept; BC in astronomical years. Input: any zone.', utc, undefined, bcInput),
  time: stringScalar('time', 'Postgres time.'),
  timetz: stringScalar('timetz', 'Postgres timetz.'),
  interval: stringScalar('interval', 'Postgres interval, ISO 8601 duration (months, days and time kept apart).'),
};

function normalizeDeep(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => normalizeDeep(x, f));
  if (v && typeof v === 'object' && Array.isArray((v as { values?: unknown }).values) && Array.isArray((v as { lower_bounds?: unknown }).lower_bounds)) {
    // an array whose lower bounds are not all 1 (docs/values.md)
    return { ...v, values: normalizeDeep((v as { values: unknown[] }).values, f) };
  }
  return v;
}

const arrayScalars = new Map<string, GraphQLScalarType>();
/** `_<scalar>`: a Postgres array of that scalar as a JSON array (nested when multi-dimensional, null elements kept). */
export function arrayScalar(elem: ScalarName): GraphQLScalarType {
  let s = arrayScalars.get(elem);
  if (!s) {
    const dated = elem === 'date' || elem === 'timestamp' || elem === 'timestamptz';
    const f = elem === 'timestamptz' ? utc : elem === 'date' || elem === 'timestamp' ? plainDate : (x: string) => x;
    s = new GraphQLScalarType({
      name: '_' + elem,
      description: `Postgres array of ${elem}, as a JSON array (nested for multi-dimensional arrays, null elements kept).`,
      serialize: (v) => normalizeDeep(v, f),
      parseValue: (v) => {
        if (!Array.isArray(v)) throw new GraphQLError(`_${elem} expects a list`);
        return dated ? normalizeDeep(v, bcInput) : v;
      },
      parseLiteral: (ast, vars) => {
        const v = literal(ast, vars);
        if (!Array.isArray(v)) throw new GraphQLError(`_${elem} expects a list`);
        return dated ? normalizeDeep(v, bcInput) : v;
      },
    });
    arrayScalars.set(elem, s);
  }
  return s;
}

export function scalarType(typeName: string): GraphQLScalarType {
  if (typeName.startsWith('_')) return arrayScalar(typeName.slice(1) as ScalarName);
  return SCALAR_TYPES[typeName as ScalarName];
}
