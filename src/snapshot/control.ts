/**
 * Snapshot bookkeeping that lives in the stream itself, so that it is exactly as durable as
 * the events it describes (docs/snapshots.md):
 *
 * - control events on `<prefix>.<db>.$snapshot`, written by the daemon after each table of
 *   an initial snapshot and after each backfill chunk, carry the whole snapshot state (jobs,
 *   tables, the last key read, rows done). They are stored right after the reads they
 *   account for, so the last control event is the state to resume from.
 * - requests (`walnats snapshot`) are logical messages with prefix `walnats.snapshot`,
 *   published like any other message on `<prefix>.<db>.$message.walnats%2Esnapshot`.
 * - watermarks are logical messages with prefix `walnats.watermark`; the daemon consumes
 *   them and does not publish them.
 *
 * Control events carry the position headers of a read (`Walnats-Op: read`, the LSN they
 * belong to, seq 0), so the resume logic treats them like the reads they follow.
 */
import { parseQualifiedName } from '../replication/sql.ts';
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { formatLsn, type Lsn } from '../lsn.ts';
import type { OutboundEvent } from '../events/envelope.ts';
import { getMessageOrNull } from '../publisher/position.ts';
import { escapeToken, streamSubjects, messageSubject, tableSubject } from '../events/subject.ts';
import {
  HEADER_COMMIT_LSN,
  HEADER_LSN,
  HEADER_MSG_ID,
  HEADER_OP,
  HEADER_SEQ,
  HEADER_SNAPSHOT,
  positionFromHeaders,
} from '../events/position.ts';

export const REQUEST_PREFIX = 'walnats.snapshot';
export const WATERMARK_PREFIX = 'walnats.watermark';

export interface TableProgress {
  schema: string;
  table: string;
  oid?: number;
  /** Read events published for this table in this job (also the next row index). */
  rows: number;
  estimated: number | null;
  /** Text of the primary key of the last row read (backfill chunks), null before the first chunk. */
  after: string[] | null;
  done: boolean;
  /** Why the table was given up (no primary key, dropped, …). */
  error?: string;
}

export interface SnapshotJob {
  /** Snapshot id: the exported snapshot's name (initial) or the request id (backfill). */
  id: string;
  kind: 'initial' | 'backfill';
  /** For an initial snapshot: the LSN it is consistent with. */
  lsn?: string;
  tables: TableProgress[];
  startedMs: number;
}

export interface SnapshotState {
  /** Unfinished jobs, in the order they run. */
  jobs: SnapshotJob[];
  /** Ids of the last requests accepted (to recognise a request seen twice). */
  requests: string[];
}

export type ControlKind = 'started' | 'table_done' | 'chunk' | 'finished' | 'resumed';

export interface ControlBody {
  op: 'snapshot';
  event: ControlKind;
  snapshot: { id: string; kind: SnapshotJob['kind']; lsn: string };
  /** The table the event is about (a copy of its progress), when there is one. */
  table: TableProgress | null;
  state: SnapshotState;
  ts_ms: number;
}

export interface SnapshotRequest {
  id: string;
  tables: Array<{ schema: string; table: string }>;
}

export function emptyState(): SnapshotState {
  return { jobs: [], requests: [] };
}

export function controlSubject(prefix: string, database: string): string {
  return streamSubjects(prefix, database)[0].slice(0, -1) + '$snapshot';
}

export function requestSubject(prefix: string, database: string): string {
  return messageSubject(prefix, database, REQUEST_PREFIX);
}

const utf8 = new TextEncoder();

/** A control event at position (lsn, 0); `tag` makes its Nats-Msg-Id unique within the job. */
export function buildControlEvent(
  prefix: string,
  database: string,
  lsn: Lsn,
  job: SnapshotJob,
  event: ControlKind,
  table: TableProgress | null,
  state: SnapshotState,
  tag: string,
): OutboundEvent {
  const snap = escapeToken(job.id);
  const msgId = `snapshot:${snap}:ctl:${tag}`;
  const body: ControlBody = {
    op: 'snapshot',
    event,
    snapshot: { id: job.id, kind: job.kind, lsn: formatLsn(lsn) },
    table: table && { ...table },
    state,
    ts_ms: Date.now(),
  };
  return {
    subject: controlSubject(prefix, database),
    msgId,
    headers: [
      [HEADER_MSG_ID, msgId],
      [HEADER_OP, 'read'],
      [HEADER_LSN, formatLsn(lsn)],
      [HEADER_COMMIT_LSN, formatLsn(lsn)],
      [HEADER_SEQ, '0'],
      [HEADER_SNAPSHOT, snap],
    ],
    body: utf8.encode(JSON.stringify(body)),
    commitLsn: lsn,
    seq: 0,
    kind: 'read',
  };
}

/**
 * A snapshot request message, or what is wrong with it. Tables are objects
 * `{"schema":"public","table":"orders"}` (what `walnats snapshot` writes) or names as the
 * command takes them (`"public.orders"`, `"\"my schema\".\"line items\""`, `"orders"`).
 */
export function readRequest(content: Uint8Array | string): SnapshotRequest | { problem: string } {
  let v: { id?: unknown; tables?: unknown };
  try {
    v = JSON.parse(typeof content === 'string' ? content : new TextDecoder().decode(content)) as typeof v;
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  if (typeof v !== 'object' || v === null) return { problem: 'not a JSON object' };
  if (typeof v.id !== 'string' || v.id === '') return { problem: '"id" must be a non-empty string' };
  if (!Array.isArray(v.tables) || v.tables.length === 0) return { problem: '"tables" must be a non-empty array' };
  const tables: Array<{ schema: string; table: string }> = [];
  for (const t of v.tables as unknown[]) {
    if (typeof t === 'string') {
      try {
        tables.push(parseQualifiedName(t));
      } catch (err) {
        return { problem: `table ${JSON.stringify(t)}: ${(err as Error).message}` };
      }
    } else if (typeof (t as { schema?: unknown })?.schema === 'string' && typeof (t as { table?: unknown })?.table === 'string') {
      tables.push({ schema: (t as { schema: string }).schema, table: (t as { table: string }).table });
    } else {
      return { problem: `each table must be {"schema":…,"table":…} or a name like "public.orders", not ${JSON.stringify(t)}` };
    }
  }
  return { id: v.id, tables };
}

const getOrNull = (jsm: JetStreamManager, stream: string, query: object): Promise<StoredMsg | null> =>
  getMessageOrNull(jsm, stream, query as { seq: number });

export interface RecoveredState {
  state: SnapshotState;
  /** Stream sequence of the control event the state came from (0: none). */
  seq: number;
  /** Requests stored after that control event. */
  laterRequests: Array<SnapshotRequest & { seq: number }>;
  /** The stream holds no control event and its first message was never removed. */
  neverSnapshotted: boolean;
}

/** The last stored snapshot state, and requests stored after it. */
export async function recoverState(jsm: JetStreamManager, stream: string, prefix: string, database: string): Promise<RecoveredState> {
  const last = await getOrNull(jsm, stream, { last_by_subj: controlSubject(prefix, database) });
  let state = emptyState();
  const seq = last?.seq ?? 0;
  if (last) state = (JSON.parse(new TextDecoder().decode(last.data)) as ControlBody).state;
  const info = await jsm.streams.info(stream);
  const laterRequests: RecoveredState['laterRequests'] = [];
  const subject = requestSubject(prefix, database);
  let next = seq + 1;
  while (next <= info.state.last_seq) {
    const m = await getOrNull(jsm, stream, { seq: next, next_by_subj: subject });
    if (!m) break;
    const body = JSON.parse(new TextDecoder().decode(m.data)) as { message?: { content_text?: string } };
    // A request the daemon could not read was logged when it arrived (engine.ts); skipped here too.
    const req = body.message?.content_text ? readRequest(body.message.content_text) : null;
    if (req && !('problem' in req)) laterRequests.push({ ...req, seq: m.seq });
    next = m.seq + 1;
  }
  return { state, seq, laterRequests, neverSnapshotted: !last && info.state.first_seq <= 1 };
}

/** Index of the next read of `table` in job `id`: one past the last read stored for it. */
export async function nextRowIndex(jsm: JetStreamManager, stream: string, prefix: string, database: string, id: string, t: TableProgress): Promise<number> {
  const m = await getOrNull(jsm, stream, { last_by_subj: tableSubject(prefix, database, t.schema, t.table, 'read') });
  const pos = m ? positionFromHeaders(m.header) : null;
  if (pos?.snapshot && pos.snapshot.id === id && pos.snapshot.tableOid === t.oid) return Math.max(t.rows, pos.snapshot.row + 1);
  return t.rows;
}
