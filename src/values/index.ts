/** Postgres text output → JSON text, per type. See docs/values.md. */
export { textToJson } from './convert.ts';
export { builtinType } from './builtin.ts';
export { describeCatalogType, CATALOG_TYPES_SQL, type PgTypeRow } from './catalog.ts';
export { PINNED_OUTPUT_SETTINGS, pinnedOptionsString } from './session.ts';
export type { TypeInfo, ValueKind } from './types.ts';
