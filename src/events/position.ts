/**
 * Event positions as they travel in message headers, and their order.
 *
 * Every event published by walnats carries its position in headers:
 *
 * | header | value |
 * |---|---|
 * | `Nats-Msg-Id` | `<commit_lsn>:<seq>` (row, truncate, message events; see below for others) |
 * | `Walnats-Op` | `insert update delete truncate message schema begin commit read` |
 * | `Walnats-Commit-Lsn` | commit LSN of the transaction, as Postgres prints it |
 * | `Walnats-Seq` | 1-based index of the event in its transaction |
 * | `Walnats-Lsn` | LSN of the WAL record of the change |
 *
 * Order: `(commitLsn, seq, sub)`, where `sub` puts a schema event at `(c, s)` just before
 * the row event `(c, s)` that follows it (a Relation message takes the seq of the next event),
 * and a snapshot read (which carries the snapshot's LSN and seq 0) before anything else at
 * the same LSN.
 */
import { formatLsn, parseLsn, type Lsn } from '../lsn.ts';
import { unescapeToken } from './subject.ts';

export const HEADER_MSG_ID = 'Nats-Msg-Id';
export const HEADER_OP = 'Walnats-Op';
export const HEADER_SCHEMA = 'Walnats-Schema';
export const HEADER_TABLE = 'Walnats-Table';
export const HEADER_LSN = 'Walnats-Lsn';
export const HEADER_COMMIT_LSN = 'Walnats-Commit-Lsn';
export const HEADER_SEQ = 'Walnats-Seq';
export const HEADER_MESSAGE_PREFIX = 'Walnats-Message-Prefix';
export const HEADER_SNAPSHOT = 'Walnats-Snapshot';
export const HEADER_TABLE_OID = 'Walnats-Table-Oid';
export const HEADER_ROW = 'Walnats-Row';

export const EVENT_KINDS = [
  'insert',
  'update',
  'delete',
  'truncate',
  'message',
  'schema',
  'begin',
  'commit',
  'read',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export interface EventPosition {
  commitLsn: Lsn;
  seq: number;
  kind: EventKind;
  /** For `read` events: which snapshot row it was. */
  snapshot?: { id: string; tableOid: number; row: number };
}

/** `Nats-Msg-Id` of a WAL event: `<commit_lsn>:<seq>`. */
export function eventMsgId(commitLsn: Lsn, seq: number): string {
  return `${formatLsn(commitLsn)}:${seq}`;
}

function subOrder(kind: EventKind): number {
  return kind === 'read' ? 0 : kind === 'schema' ? 1 : 2;
}

/** Negative when a sorts before b, 0 when equal, positive after. */
export function comparePositions(
  a: Pick<EventPosition, 'commitLsn' | 'seq' | 'kind'>,
  b: Pick<EventPosition, 'commitLsn' | 'seq' | 'kind'>,
): number {
  if (a.commitLsn !== b.commitLsn) return a.commitLsn < b.commitLsn ? -1 : 1;
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  return subOrder(a.kind) - subOrder(b.kind);
}

/** Anything headers can be read from: NATS `MsgHdrs`, a Map, or `[name, value]` pairs. */
export type HeaderSource = { get(name: string): string | undefined | null } | Iterable<readonly [string, string]>;

function headerGetter(h: HeaderSource): (name: string) => string | undefined {
  if (typeof (h as { get?: unknown }).get === 'function') {
    const g = h as { get(name: string): string | undefined | null };
    return (name) => {
      const v = g.get(name);
      return v === null || v === undefined || v === '' ? undefined : v;
    };
  }
  const map = new Map<string, string>();
  for (const [k, v] of h as Iterable<readonly [string, string]>) if (!map.has(k.toLowerCase())) map.set(k.toLowerCase(), v);
  return (name) => map.get(name.toLowerCase());
}

/**
 * Reads an event's position back from its headers. Returns null when the message has no
 * walnats position headers at all; throws when they are present but malformed.
 */
export function positionFromHeaders(headers: HeaderSource | undefined | null): EventPosition | null {
  if (!headers) return null;
  const get = headerGetter(headers);
  const op = get(HEADER_OP);
  const lsn = get(HEADER_COMMIT_LSN);
  const seqText = get(HEADER_SEQ);
  if (op === undefined && lsn === undefined && seqText === undefined) return null;
  if (op === undefined || lsn === undefined || seqText === undefined) {
    throw new Error(
      `incomplete walnats position headers: ${HEADER_OP}=${op ?? '(missing)'}, ${HEADER_COMMIT_LSN}=${lsn ?? '(missing)'}, ${HEADER_SEQ}=${seqText ?? '(missing)'}`,
    );
  }
  if (!(EVENT_KINDS as readonly string[]).includes(op)) throw new Error(`invalid ${HEADER_OP} header ${JSON.stringify(op)}`);
  if (!/^\d{1,15}$/.test(seqText)) throw new Error(`invalid ${HEADER_SEQ} header ${JSON.stringify(seqText)}`);
  let commitLsn: Lsn;
  try {
    commitLsn = parseLsn(lsn);
  } catch (cause) {
    throw new Error(`invalid ${HEADER_COMMIT_LSN} header ${JSON.stringify(lsn)}`, { cause });
  }
  const pos: EventPosition = { commitLsn, seq: Number(seqText), kind: op as EventKind };
  if (op === 'read') {
    const id = get(HEADER_SNAPSHOT);
    const oid = get(HEADER_TABLE_OID);
    const row = get(HEADER_ROW);
    if (id !== undefined && oid !== undefined && row !== undefined) {
      pos.snapshot = { id: unescapeToken(id), tableOid: Number(oid), row: Number(row) };
    }
  }
  return pos;
}
