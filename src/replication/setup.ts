/**
 * Publication and slot: checked at start, created when missing (unless configured off),
 * and the tables that cannot be captured reported rather than skipped in silence.
 */
import type pg from 'pg';
import { parseLsn, type Lsn } from '../lsn.ts';
import { quoteIdent, quoteLiteral } from './sql.ts';

export interface PublicationSpec {
  name: string;
  /** Qualified tables; empty = FOR ALL TABLES. */
  tables: Array<{ schema: string; table: string }>;
  create: boolean;
}

export interface CaptureProblem {
  schema: string;
  table: string;
  problem: 'unlogged' | 'no-replica-identity' | 'not-in-publication' | 'missing';
  detail: string;
}

export class SetupError extends Error {
  override name = 'SetupError';
}

export async function ensurePublication(db: pg.Client, spec: PublicationSpec): Promise<{ created: boolean; altered: boolean }> {
  const existing = await db.query<{ puballtables: boolean; pubupdate: boolean }>(
    'SELECT puballtables, pubupdate FROM pg_publication WHERE pubname = $1',
    [spec.name],
  );
  const tableList = spec.tables.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`).join(', ');
  if (existing.rowCount === 0) {
    if (!spec.create) {
      throw new SetupError(`publication ${JSON.stringify(spec.name)} does not exist and create_publication is off`);
    }
    const target = spec.tables.length === 0 ? 'FOR ALL TABLES' : `FOR TABLE ${tableList}`;
    try {
      await db.query(`CREATE PUBLICATION ${quoteIdent(spec.name)} ${target}`);
    } catch (err) {
      if ((err as { code?: string }).code !== '42501' || spec.tables.length > 0) throw err;
      throw new SetupError(
        `${(err as Error).message}: list the tables to capture (tables, --tables schema.table,…) ` +
          `or create the publication as a superuser and set create_publication=false`,
        { cause: err },
      );
    }
    return { created: true, altered: false };
  }
  const pub = existing.rows[0];
  if (spec.tables.length === 0) {
    if (!pub.puballtables) {
      throw new SetupError(
        `publication ${JSON.stringify(spec.name)} exists but is not FOR ALL TABLES, while no tables are configured; ` +
          `configure \`tables\` or recreate the publication`,
      );
    }
    return { created: false, altered: false };
  }
  if (pub.puballtables) return { created: false, altered: false };
  // A configured table list is authoritative: bring the publication in line with it.
  const current = await db.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [spec.name],
  );
  const have = new Set(current.rows.map((r) => `${r.schemaname}\u0000${r.tablename}`));
  const want = new Set(spec.tables.map((t) => `${t.schema}\u0000${t.table}`));
  const same = have.size === want.size && [...want].every((k) => have.has(k));
  if (same) return { created: false, altered: false };
  if (!spec.create) {
    throw new SetupError(`publication ${JSON.stringify(spec.name)} does not match the configured tables and create_publication is off`);
  }
  await db.query(`ALTER PUBLICATION ${quoteIdent(spec.name)} SET TABLE ${tableList}`);
  return { created: false, altered: true };
}

/** Tables that the publication names (or should) but whose changes cannot all be captured. */
export async function findCaptureProblems(db: pg.Client, spec: PublicationSpec): Promise<CaptureProblem[]> {
  const problems: CaptureProblem[] = [];
  for (const t of spec.tables) {
    const r = await db.query(
      `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`,
      [t.schema, t.table],
    );
    if (r.rowCount === 0) problems.push({ ...t, problem: 'missing', detail: 'configured table does not exist' });
  }
  const rows = await db.query<{ nspname: string; relname: string; relpersistence: string; relreplident: string; has_key: boolean; pubupdate: boolean; pubdelete: boolean }>(
    `WITH pub AS (SELECT puballtables, pubupdate, pubdelete FROM pg_publication WHERE pubname = $1)
     SELECT n.nspname, c.relname, c.relpersistence, c.relreplident,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR (c.relreplident = 'i' AND i.indisreplident))) AS has_key,
            pub.pubupdate, pub.pubdelete
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, pub
      WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'
        AND (pub.puballtables OR EXISTS (SELECT 1 FROM pg_publication_tables pt WHERE pt.pubname = $1 AND pt.schemaname = n.nspname AND pt.tablename = c.relname)
             OR c.relpersistence = 'u')`,
    [spec.name],
  );
  const configured = new Set(spec.tables.map((t) => `${t.schema}\u0000${t.table}`));
  for (const r of rows.rows) {
    const key = `${r.nspname}\u0000${r.relname}`;
    if (r.relpersistence === 'u') {
      if (spec.tables.length === 0 || configured.has(key)) {
        problems.push({ schema: r.nspname, table: r.relname, problem: 'unlogged', detail: 'unlogged tables are not written to the WAL, so their changes cannot be captured' });
      }
      continue;
    }
    const identityMissing = r.relreplident === 'n' || (r.relreplident !== 'f' && !r.has_key);
    if (identityMissing && (r.pubupdate || r.pubdelete)) {
      problems.push({
        schema: r.nspname,
        table: r.relname,
        problem: 'no-replica-identity',
        detail: 'no primary key or replica identity: Postgres rejects UPDATE/DELETE on it while it is published; set REPLICA IDENTITY FULL or add a key',
      });
    }
  }
  return problems;
}

export interface SlotState {
  created: boolean;
  /** For a new slot: where streaming starts and the exported snapshot that matches it. */
  consistentPoint?: Lsn;
  snapshotName?: string;
  confirmedFlushLsn?: Lsn;
}

export interface SlotSpec {
  name: string;
  create: boolean;
  exportSnapshot: boolean;
}

/**
 * Checks the slot through a plain connection, creates it through the replication connection
 * when missing. An exported snapshot stays valid only until the replication connection runs
 * its next command, so the caller must import it before START_REPLICATION.
 */
export async function ensureSlot(db: pg.Client, repl: pg.Client, spec: SlotSpec, database: string): Promise<SlotState> {
  const r = await db.query<{ plugin: string; database: string; slot_type: string; confirmed_flush_lsn: string | null; wal_status: string | null; active_pid: number | null }>(
    `SELECT plugin, database, slot_type, confirmed_flush_lsn::text, wal_status, active_pid FROM pg_replication_slots WHERE slot_name = $1`,
    [spec.name],
  );
  if (r.rowCount && r.rowCount > 0) {
    const s = r.rows[0];
    if (s.slot_type !== 'logical' || s.plugin !== 'pgoutput') {
      throw new SetupError(`slot ${JSON.stringify(spec.name)} exists but is ${s.slot_type}/${s.plugin}, not a logical pgoutput slot`);
    }
    if (s.database !== database) {
      throw new SetupError(`slot ${JSON.stringify(spec.name)} belongs to database ${JSON.stringify(s.database)}, not ${JSON.stringify(database)}`);
    }
    if (s.wal_status === 'lost') {
      throw new SetupError(
        `slot ${JSON.stringify(spec.name)} has been invalidated (wal_status = lost, max_slot_wal_keep_size exceeded): ` +
          `changes since its position are gone. Recover by dropping the slot (SELECT pg_drop_replication_slot(${quoteLiteral(spec.name)})) ` +
          `and starting walnats again, which creates a new slot and takes a new snapshot`,
      );
    }
    return { created: false, confirmedFlushLsn: s.confirmed_flush_lsn ? parseLsn(s.confirmed_flush_lsn) : undefined };
  }
  if (!spec.create) throw new SetupError(`replication slot ${JSON.stringify(spec.name)} does not exist and create_slot is off`);
  const res = await repl.query(
    `CREATE_REPLICATION_SLOT ${quoteIdent(spec.name)} LOGICAL pgoutput ${spec.exportSnapshot ? 'EXPORT_SNAPSHOT' : 'NOEXPORT_SNAPSHOT'}`,
  );
  const row = res.rows[0] as { consistent_point: string; snapshot_name: string | null };
  return {
    created: true,
    consistentPoint: parseLsn(row.consistent_point),
    snapshotName: row.snapshot_name ?? undefined,
  };
}
