/**
 * Types shared by the decoder (pgoutput bytes → messages), the transaction assembler
 * (messages → changes) and the event builder (changes → JetStream messages).
 */
import type { Lsn } from '../lsn.ts';

/**
 * One value per column, in the relation's column order:
 * `string` text value, `null` SQL NULL, `undefined` unchanged TOASTed value that was not
 * sent, `Uint8Array` binary value (only with pgoutput's `binary 'true'`).
 */
export type TupleData = Array<string | null | undefined | Uint8Array>;

export type ReplicaIdentity = 'default' | 'nothing' | 'full' | 'index';

export interface RelationColumn {
  name: string;
  typeOid: number;
  typeMod: number;
  /** Part of the replica identity key (flag bit 1 in pgoutput). */
  isKey: boolean;
}

export interface Relation {
  oid: number;
  schema: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

/** Where an event sits in the total order of everything the slot sends. */
export interface Position {
  /** Commit LSN of the transaction (Begin's final LSN); a non-transactional message's own LSN. */
  commitLsn: Lsn;
  /** 1-based index of the event within its transaction. */
  seq: number;
  /** LSN of the WAL record that produced the change (walStart of its XLogData). */
  lsn: Lsn;
  xid: number | undefined;
  /** Commit time in microseconds since 2000-01-01 UTC, as Postgres sends it. */
  commitTimeUs: bigint;
}

export interface RowChange extends Position {
  kind: 'insert' | 'update' | 'delete';
  relation: Relation;
  /** Old values: the key columns (`beforeKind: 'key'`), the whole old row (`'old'`), or null. */
  before: TupleData | null;
  beforeKind: 'key' | 'old' | null;
  after: TupleData | null;
}

export interface TruncateChange extends Position {
  kind: 'truncate';
  relation: Relation;
  cascade: boolean;
  restartIdentity: boolean;
}

export interface MessageChange extends Position {
  kind: 'message';
  prefix: string;
  content: Uint8Array;
  transactional: boolean;
}

/**
 * A Relation message arrived (pgoutput sends one before the first change of a table in each
 * session, and again after its shape changes). It takes no `seq` of its own: `seq` is that
 * of the event that follows it, so replays number events identically whether or not the
 * relation was re-sent. Whether it is published as a schema event is decided by the daemon.
 */
export interface RelationChange extends Position {
  kind: 'relation';
  relation: Relation;
  /** The shape this session knew before, if any. */
  previous: Relation | undefined;
}

export interface BeginChange extends Position {
  kind: 'begin';
}

export interface CommitChange extends Position {
  kind: 'commit';
  /** End of the commit record: what the slot may be confirmed up to once all events are acked. */
  endLsn: Lsn;
  /** Number of events (seq values) the transaction produced. */
  eventCount: number;
}

export type Change =
  | RowChange
  | TruncateChange
  | MessageChange
  | RelationChange
  | BeginChange
  | CommitChange;
