/**
 * Dead-letter events: a change that could not become a normal event (a value the converter
 * rejects, an event larger than NATS allows) is parked in its place, with the same position
 * and `Nats-Msg-Id`, so exactly-once and resuming hold across it. The body says what and why,
 * never the (possibly huge or unreadable) row itself.
 */
import { formatLsn } from '../lsn.ts';
import type { Change } from '../decoder/types.ts';
import type { OutboundEvent } from './envelope.ts';
import { pgTimeToUnixMs } from '../decoder/time.ts';
import { HEADER_COMMIT_LSN, HEADER_LSN, HEADER_MSG_ID, HEADER_OP, HEADER_SCHEMA, HEADER_SEQ, HEADER_TABLE, eventMsgId, type EventKind } from './position.ts';
import { deadLetterSubject, escapeToken } from './subject.ts';

export const HEADER_DEAD_LETTER = 'Walnats-Dead-Letter';

export interface DeadLetterInfo {
  /** Short machine-readable reason: `conversion`, `too_large`, … */
  reason: string;
  /** The error's message. */
  error: string;
  /** Size of the event that could not be published, when known. */
  size?: number;
}

function names(change: Change): { schema: string; table: string } {
  if ('relation' in change) return { schema: change.relation.schema, table: change.relation.name };
  return { schema: '', table: '' };
}

export function buildDeadLetterEvent(prefix: string, database: string, change: Change, info: DeadLetterInfo, now = Date.now()): OutboundEvent {
  const { schema, table } = names(change);
  const kind = (change.kind === 'relation' ? 'schema' : change.kind) as EventKind;
  const lsn = formatLsn(change.lsn);
  const commitLsn = formatLsn(change.commitLsn);
  const msgId = eventMsgId(change.commitLsn, change.seq);
  const body = JSON.stringify({
    op: kind,
    dead_letter: { reason: info.reason, error: info.error, ...(info.size !== undefined ? { size: info.size } : {}) },
    source: {
      connector: 'walnats',
      db: database,
      schema,
      table,
      lsn,
      commit_lsn: commitLsn,
      seq: change.seq,
      txid: change.xid ?? null,
      ts_ms: change.commitTimeUs ? pgTimeToUnixMs(change.commitTimeUs) : null,
      snapshot: false,
    },
    ts_ms: now,
  });
  return {
    subject: deadLetterSubject(prefix, database, schema, table),
    msgId,
    headers: [
      [HEADER_MSG_ID, msgId],
      [HEADER_OP, kind],
      [HEADER_SCHEMA, escapeToken(schema)],
      [HEADER_TABLE, escapeToken(table)],
      [HEADER_LSN, lsn],
      [HEADER_COMMIT_LSN, commitLsn],
      [HEADER_SEQ, String(change.seq)],
      [HEADER_DEAD_LETTER, info.reason],
    ],
    body: Buffer.from(body, 'utf8'),
    commitLsn: change.commitLsn,
    seq: change.seq,
    kind,
  };
}
