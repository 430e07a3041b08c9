/**
 * The pgoutput logical replication messages of protocol versions 1–4, as decoded values.
 * Field names follow the "Logical Replication Message Formats" chapter of the Postgres docs.
 *
 * LSNs are `bigint` (src/lsn.ts); times are `bigint` microseconds since 2000-01-01 UTC
 * exactly as Postgres sends them (src/decoder/time.ts converts). Xids and OIDs are unsigned.
 *
 * `xid` on Relation/Type/Insert/Update/Delete/Truncate/Message is only present (protocol
 * v2+) inside a streaming block, where changes of several transactions interleave;
 * elsewhere it is `undefined`. It is always set as a property so every message of one kind
 * has the same object shape (keeps the hot path monomorphic).
 */
import type { Lsn } from '../lsn.ts';
import type { Relation, TupleData } from './types.ts';

export interface BeginMessage {
  tag: 'begin';
  /** LSN of the commit record: the transaction's commit LSN. */
  finalLsn: Lsn;
  commitTimeUs: bigint;
  xid: number;
}

export interface CommitMessage {
  tag: 'commit';
  /** Currently unused by Postgres (always 0). */
  flags: number;
  commitLsn: Lsn;
  /** End of the commit record. */
  endLsn: Lsn;
  commitTimeUs: bigint;
}

export interface OriginMessage {
  tag: 'origin';
  /** Commit LSN on the origin server. */
  originLsn: Lsn;
  name: string;
}

export interface RelationMessage {
  tag: 'relation';
  xid: number | undefined;
  relation: Relation;
}

export interface TypeMessage {
  tag: 'type';
  xid: number | undefined;
  typeOid: number;
  schema: string;
  name: string;
}

export interface InsertMessage {
  tag: 'insert';
  xid: number | undefined;
  relationOid: number;
  newTuple: TupleData;
}

export interface UpdateMessage {
  tag: 'update';
  xid: number | undefined;
  relationOid: number;
  /** 'key' for a 'K' (old key) tuple, 'old' for an 'O' (whole old row) tuple, null if neither was sent. */
  oldKind: 'key' | 'old' | null;
  oldTuple: TupleData | null;
  newTuple: TupleData;
}

export interface DeleteMessage {
  tag: 'delete';
  xid: number | undefined;
  relationOid: number;
  oldKind: 'key' | 'old';
  oldTuple: TupleData;
}

export interface TruncateMessage {
  tag: 'truncate';
  xid: number | undefined;
  /** Raw option bits: 1 = CASCADE, 2 = RESTART IDENTITY. */
  options: number;
  cascade: boolean;
  restartIdentity: boolean;
  relationOids: number[];
}

export interface LogicalMessage {
  tag: 'message';
  xid: number | undefined;
  /** Raw flags: bit 1 = transactional. */
  flags: number;
  transactional: boolean;
  /** LSN of the logical decoding message record. */
  lsn: Lsn;
  prefix: string;
  content: Uint8Array;
}

export interface StreamStartMessage {
  tag: 'stream_start';
  xid: number;
  /** True for the first stream segment of this transaction. */
  firstSegment: boolean;
}

export interface StreamStopMessage {
  tag: 'stream_stop';
}

export interface StreamCommitMessage {
  tag: 'stream_commit';
  xid: number;
  flags: number;
  commitLsn: Lsn;
  endLsn: Lsn;
  commitTimeUs: bigint;
}

export interface StreamAbortMessage {
  tag: 'stream_abort';
  xid: number;
  /** The aborted subtransaction; equal to `xid` when the whole transaction aborted. */
  subxid: number;
  /** Only with protocol v4 and `streaming parallel`; undefined otherwise. */
  abortLsn: Lsn | undefined;
  abortTimeUs: bigint | undefined;
}

export interface BeginPrepareMessage {
  tag: 'begin_prepare';
  prepareLsn: Lsn;
  /** End of the prepared transaction's PREPARE record. */
  endLsn: Lsn;
  prepareTimeUs: bigint;
  xid: number;
  gid: string;
}

export interface PrepareMessage {
  tag: 'prepare';
  flags: number;
  prepareLsn: Lsn;
  endLsn: Lsn;
  prepareTimeUs: bigint;
  xid: number;
  gid: string;
}

export interface CommitPreparedMessage {
  tag: 'commit_prepared';
  flags: number;
  commitLsn: Lsn;
  endLsn: Lsn;
  commitTimeUs: bigint;
  xid: number;
  gid: string;
}

export interface RollbackPreparedMessage {
  tag: 'rollback_prepared';
  flags: number;
  /** End LSN of the prepared transaction. */
  prepareEndLsn: Lsn;
  /** End LSN of the rollback record. */
  rollbackEndLsn: Lsn;
  prepareTimeUs: bigint;
  rollbackTimeUs: bigint;
  xid: number;
  gid: string;
}

export interface StreamPrepareMessage {
  tag: 'stream_prepare';
  flags: number;
  prepareLsn: Lsn;
  endLsn: Lsn;
  prepareTimeUs: bigint;
  xid: number;
  gid: string;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage
  | BeginPrepareMessage
  | PrepareMessage
  | CommitPreparedMessage
  | RollbackPreparedMessage
  | StreamPrepareMessage;

export type PgoutputTag = PgoutputMessage['tag'];
