/**
 * What a snapshot read needs to know about a table: its Relation exactly as pgoutput would
 * describe it (same columns, same order, generated columns and columns outside the
 * publication's column list left out), its primary key, and the publication's row filter.
 * Also the connection that reads rows as the raw text Postgres prints (docs/values.md).
 */
import pg from 'pg';
import type { Relation, ReplicaIdentity } from '../decoder/types.ts';
import { pinnedOptionsString } from '../values/session.ts';
import { quoteIdent } from '../replication/sql.ts';

export interface TableRef {
  schema: string;
  table: string;
}

export interface SnapshotTable {
  relation: Relation;
  /** Primary key columns, in key order: indexes into `relation.columns`. Empty: no primary key. */
  keyColumns: number[];
  /** SQL type of each key column, for casting text parameters (`int4`, `text`, …). */
  keyTypes: string[];
  /** `"schema"."table"` */
  qualified: string;
  /** `"a", "b", …` in relation column order. */
  selectList: string;
  /** The publication's row filter (Postgres 15+), or null. */
  rowFilter: string | null;
  /** pg_class.reltuples, or null when the table was never analyzed. */
  estimatedRows: number | null;
  /** `ONLY ` for plain tables (inheritance children are published on their own), `` for partitioned ones. */
  only: string;
}

export class SnapshotTableError extends Error {
  override name = 'SnapshotTableError';
}

/**
 * A connection whose values come back as the text Postgres printed, unchanged (no type
 * parsing), with the pinned output settings: a read gives the same text as pgoutput.
 */
export async function openSnapshotConnection(url: string, applicationName = 'walnats-snapshot'): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    options: pinnedOptionsString(),
    application_name: applicationName,
    types: { getTypeParser: () => (v: string) => v },
  } as pg.ClientConfig);
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Tables the publication publishes (as pgoutput sends them: partition roots or leaves per its setting). */
export async function publishedTables(db: pg.Client, publication: string): Promise<TableRef[]> {
  const r = await db.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY schemaname, tablename',
    [publication],
  );
  return r.rows.map((x) => ({ schema: x.schemaname, table: x.tablename }));
}

/** Backfill requests and watermarks are logical messages, which pgoutput sends from Postgres 14 on. */
export const BACKFILL_MIN_SERVER_VERSION = 140000;
export const BACKFILL_NEEDS_PG14 =
  'backfills need PostgreSQL 14 or later: their requests and watermarks are logical messages, which pgoutput sends only from 14 on. ' +
  'To read the tables again on this server, drop the slot and start walnats again (a new slot takes a new initial snapshot)';

const serverVersions = new WeakMap<pg.Client, Promise<number>>();

/** The server's `server_version_num` (e.g. 130022, 180004), asked once per connection. */
export function serverVersionNum(db: pg.Client): Promise<number> {
  let v = serverVersions.get(db);
  if (!v) {
    v = db.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`).then((r) => Number(r.rows[0].v));
    v.catch(() => serverVersions.delete(db));
    serverVersions.set(db, v);
  }
  return v;
}

const IDENTITY: Record<string, ReplicaIdentity> = { d: 'default', n: 'nothing', f: 'full', i: 'index' };

export async function describeTable(db: pg.Client, ref: TableRef, publication: string): Promise<SnapshotTable> {
  const rel = await db.query<{ oid: string; relreplident: string; reltuples: string; relkind: string }>(
    `SELECT c.oid, c.relreplident, c.reltuples, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [ref.schema, ref.table],
  );
  if (rel.rowCount === 0) throw new SnapshotTableError(`table ${ref.schema}.${ref.table} does not exist`);
  const { oid: oidText, relreplident, reltuples, relkind } = rel.rows[0];
  if (relkind !== 'r' && relkind !== 'p') throw new SnapshotTableError(`${ref.schema}.${ref.table} is not a table (relkind ${relkind})`);
  const oid = Number(oidText);
  // Column lists and row filters (pg_publication_tables.attnames, .rowfilter) exist from
  // Postgres 15; before, a publication publishes every column and every row.
  const pub = await db.query<{ attnames: string[] | string | null; rowfilter: string | null }>(
    (await serverVersionNum(db)) >= 150000
      ? `SELECT attnames, rowfilter FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3`
      : `SELECT NULL::name[] AS attnames, NULL::text AS rowfilter FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3`,
    [publication, ref.schema, ref.table],
  );
  if (pub.rowCount === 0) {
    throw new SnapshotTableError(`table ${ref.schema}.${ref.table} is not in publication ${JSON.stringify(publication)}: its changes are not captured`);
  }
  const published = parseNameArray(pub.rows[0].attnames);
  const cols = await db.query<{ attname: string; atttypid: string; atttypmod: string; typname: string; pk: string | null; ident: boolean }>(
    `SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, NULL) AS typname,
            (SELECT k.ord FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
              WHERE i.indrelid = a.attrelid AND i.indisprimary AND k.attnum = a.attnum) AS pk,
            CASE c.relreplident
              WHEN 'f' THEN true
              WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey))
              WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisreplident AND a.attnum = ANY (i.indkey))
              ELSE false END AS ident
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY a.attnum`,
    [oid],
  );
  const rows = cols.rows.filter((c) => !published || published.includes(c.attname));
  const relation: Relation = {
    oid,
    schema: ref.schema,
    name: ref.table,
    replicaIdentity: IDENTITY[relreplident] ?? 'default',
    columns: rows.map((c) => ({ name: c.attname, typeOid: Number(c.atttypid), typeMod: Number(c.atttypmod), isKey: c.ident === true || (c.ident as unknown) === 't' })),
  };
  const keyed = rows.map((c, i) => ({ i, ord: c.pk === null ? null : Number(c.pk), type: c.typname })).filter((k) => k.ord !== null);
  keyed.sort((a, b) => a.ord! - b.ord!);
  const pkCount = (await db.query<{ n: string }>(`SELECT coalesce((SELECT indnkeyatts FROM pg_index WHERE indrelid = $1 AND indisprimary), 0) AS n`, [oid])).rows[0].n;
  // A key column left out by a publication column list cannot be read back: treat as keyless.
  const keyComplete = keyed.length > 0 && keyed.length === Number(pkCount);
  const estimate = Number(reltuples);
  return {
    relation,
    keyColumns: keyComplete ? keyed.map((k) => k.i) : [],
    keyTypes: keyComplete ? keyed.map((k) => k.type) : [],
    qualified: `${quoteIdent(ref.schema)}.${quoteIdent(ref.table)}`,
    selectList: relation.columns.map((c) => quoteIdent(c.name)).join(', '),
    rowFilter: pub.rows[0].rowfilter,
    estimatedRows: estimate >= 0 ? Math.round(estimate) : null,
    only: relkind === 'p' ? '' : 'ONLY ',
  };
}

/** A name[] as node-postgres gives it with parsing off: `{a,"b c"}` text. */
function parseNameArray(v: string[] | string | null): string[] | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v;
  const inner = v.slice(1, -1);
  if (inner === '') return [];
  const out: string[] = [];
  let i = 0;
  while (i < inner.length) {
    if (inner[i] === '"') {
      let s = '';
      i++;
      while (inner[i] !== '"') {
        if (inner[i] === '\\') i++;
        s += inner[i++];
      }
      i++;
      out.push(s);
    } else {
      let j = i;
      while (j < inner.length && inner[j] !== ',') j++;
      out.push(inner.slice(i, j));
      i = j;
    }
    if (inner[i] === ',') i++;
  }
  return out;
}

/** `SELECT <columns> FROM <table> [WHERE <row filter>]` for a full read. */
export function fullReadSql(t: SnapshotTable): string {
  return `SELECT ${t.selectList} FROM ${t.only}${t.qualified}${t.rowFilter ? ` WHERE (${t.rowFilter})` : ''}`;
}

/** One chunk in key order after `after` (null: from the start). Parameters: the key texts, then the limit. */
export function chunkReadSql(t: SnapshotTable, after: string[] | null): string {
  const keys = t.keyColumns.map((i) => quoteIdent(t.relation.columns[i].name));
  const conds: string[] = [];
  if (t.rowFilter) conds.push(`(${t.rowFilter})`);
  if (after) conds.push(`(${keys.join(', ')}) > (${t.keyTypes.map((ty, i) => `$${i + 1}::${ty}`).join(', ')})`);
  const limit = `$${after ? keys.length + 1 : 1}`;
  return `SELECT ${t.selectList} FROM ${t.only}${t.qualified}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''} ORDER BY ${keys.join(', ')} LIMIT ${limit}`;
}
