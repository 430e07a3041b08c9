/**
 * A configured table list (`tables`): the daemon creates a `FOR TABLE` publication, publishes
 * only those tables, and — when only the other tables change — still moves the slot on, so
 * WAL is not pinned. It asks the server for the highest pgoutput version it speaks.
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { readStream } from '../harness/stream.ts';
import { useProcessSuite } from '../harness/process-suite.ts';
import { parseLsn } from '../../src/lsn.ts';
import { protocolVersionFor } from '../../src/replication/protocol.ts';

const suite = useProcessSuite('tables-reader');

describe('a configured table list', () => {
  it('creates a FOR TABLE publication, publishes only the listed tables, and advances the slot while only other tables change', async () => {
    const { db, stream, startStreaming, sql } = await suite.setup('tables', { WALNATS_TABLES: 'public.ledger' });
    await sql('CREATE TABLE other (id int PRIMARY KEY)');
    const daemon = await startStreaming();

    const [{ server_version_num: version }] = await suite.pgs.sql<{ server_version_num: string }>('SHOW server_version_num');
    expect(daemon.log()).toMatch(new RegExp(`"protocolVersion":${protocolVersionFor(Number(version))}\\b`));
    const pub = await suite.pgs.sql<{ puballtables: boolean }>(`SELECT puballtables FROM pg_publication WHERE pubname = 'walnats'`, [], db);
    expect(pub).toEqual([{ puballtables: false }]);
    const tables = await suite.pgs.sql<{ tablename: string }>(`SELECT tablename FROM pg_publication_tables WHERE pubname = 'walnats'`, [], db);
    expect(tables.map((t) => t.tablename)).toEqual(['ledger']);

    await sql(`INSERT INTO ledger VALUES (1, 0, 'x')`);
    await sql('INSERT INTO other VALUES (1)');
    await sql(`INSERT INTO ledger VALUES (2, 0, 'x')`);
    // The stream also holds schema and snapshot-control events: wait for the second insert.
    const events = await waitFor('both ledger inserts', async () => {
      const all = await readStream(suite.nc, stream).catch(() => []);
      return all.some((e) => e.body.op === 'c' && e.body.after.id === 2) ? all : undefined;
    }, 30_000, 200);
    expect(events.filter((e) => e.body.op === 'c').map((e) => [e.body.source.table, e.body.after.id])).toEqual([
      ['ledger', 1],
      ['ledger', 2],
    ]);

    // Only the unpublished table changes now: the slot must still follow the WAL.
    for (let i = 2; i < 50; i++) await sql('INSERT INTO other VALUES ($1)', [i]);
    const [{ lsn: walNow }] = await suite.pgs.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor('the slot to pass the WAL written for the other table', async () => {
      const [row] = await suite.pgs.sql<{ lsn: string }>('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [db]);
      return parseLsn(row.lsn) >= parseLsn(walNow) || undefined;
    }, 20_000, 200);
    expect((await readStream(suite.nc, stream)).filter((e) => e.body.source?.table === 'other')).toEqual([]);
  }, 60_000);
});
