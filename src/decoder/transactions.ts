/**
 * PgoutputMessage → Change: gives every event its position (commit LSN, seq) and resolves
 * relation OIDs to relations. Pure and synchronous.
 *
 * Positions need no buffering: Begin already carries the commit LSN (finalLsn), so each
 * change can be numbered and passed on as it arrives. Numbering:
 *   Begin             seq 0
 *   each event        seq 1, 2, 3 … (insert/update/delete, one per truncated table, message)
 *   Relation          seq of the event that follows it (takes none of its own, so a replay
 *                     numbers events the same whether or not the Relation is re-sent)
 *   Commit            seq eventCount + 1 (after every event, so positions stay strictly
 *                     increasing); eventCount = number of seq values the events used
 *
 * walnats never asks for `streaming` or `two_phase`: the walsender then sends only
 * committed transactions, each whole between Begin and Commit (spilling big ones to disk
 * itself), so the daemon never holds uncommitted data. Streaming and two-phase messages
 * here mean a misconfigured session and are rejected.
 */
import type { Lsn } from '../lsn.ts';
import { formatLsn } from '../lsn.ts';
import type { PgoutputMessage } from './messages.ts';
import { RelationCache } from './relations.ts';
import type { Change, Relation, TupleData } from './types.ts';

/** A message sequence that pgoutput (as walnats configures it) cannot produce. */
export class TransactionSequenceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransactionSequenceError';
  }
}

export interface TransactionAssembler {
  /** Turns one message, received at XLogData `walStart`, into zero or more changes. */
  push(walStart: Lsn, msg: PgoutputMessage): Change[];
  /** Relations and types known in this session. */
  readonly relations: RelationCache;
  /** Whether a Begin has been seen without its Commit. */
  readonly inTransaction: boolean;
}

export interface TransactionAssemblerOptions {
  /** Share a cache (e.g. with a decoder test); a fresh one by default. */
  relations?: RelationCache;
}

const NONE: Change[] = [];

export function createTransactionAssembler(opts: TransactionAssemblerOptions = {}): TransactionAssembler {
  const relations = opts.relations ?? new RelationCache();
  let inTxn = false;
  let commitLsn: Lsn = 0n;
  let xid: number | undefined;
  let commitTimeUs = 0n;
  /** Last seq used by an event of the open transaction. */
  let seq = 0;
  /**
   * The last WAL position a message of this transaction came with. The walsender sends a
   * position only with the last write of a change (Postgres's WalSndPrepareWrite sends 0/0 for
   * the others, so that synchronous replication never sees one LSN twice): a Relation message
   * written before the change that needs it comes with 0/0, and takes this one instead.
   */
  let lastLsn: Lsn = 0n;

  function requireTxn(what: string, walStart: Lsn): void {
    if (!inTxn) {
      throw new TransactionSequenceError(`${what} at ${formatLsn(walStart)} outside a transaction (no Begin before it)`);
    }
  }

  function relationFor(oid: number, what: string, walStart: Lsn): Relation {
    try {
      return relations.get(oid);
    } catch (err) {
      throw new TransactionSequenceError(
        `${what} at ${formatLsn(walStart)} for relation OID ${oid}, which no Relation message announced`,
        { cause: err },
      );
    }
  }

  function checkTuple(rel: Relation, tuple: TupleData, what: string, walStart: Lsn): void {
    if (tuple.length !== rel.columns.length) {
      throw new TransactionSequenceError(
        `${what} at ${formatLsn(walStart)} on ${rel.schema}.${rel.name} (OID ${rel.oid}) has ${tuple.length} column(s), its Relation message ${rel.columns.length}`,
      );
    }
  }

  function unsupported(msg: PgoutputMessage, walStart: Lsn): never {
    throw new TransactionSequenceError(
      `unexpected pgoutput ${msg.tag} message at ${formatLsn(walStart)}: walnats does not request streaming or two_phase ` +
        `(the walsender spills large transactions to disk itself, so only committed transactions are sent); ` +
        `check the replication session's options`,
    );
  }

  function push(walStart: Lsn, msg: PgoutputMessage): Change[] {
    if (walStart !== 0n) lastLsn = walStart;
    switch (msg.tag) {
      case 'begin':
        if (inTxn) {
          throw new TransactionSequenceError(
            `Begin of xid ${msg.xid} at ${formatLsn(walStart)} inside transaction xid ${xid} (commit ${formatLsn(commitLsn)}) that has not committed`,
          );
        }
        inTxn = true;
        commitLsn = msg.finalLsn;
        xid = msg.xid;
        commitTimeUs = msg.commitTimeUs;
        seq = 0;
        lastLsn = walStart;
        return [{ kind: 'begin', commitLsn, seq: 0, lsn: walStart, xid, commitTimeUs }];

      case 'commit': {
        requireTxn('Commit', walStart);
        if (msg.commitLsn !== commitLsn) {
          throw new TransactionSequenceError(
            `Commit at ${formatLsn(walStart)} has commit LSN ${formatLsn(msg.commitLsn)}, but Begin of xid ${xid} announced ${formatLsn(commitLsn)}`,
          );
        }
        const change: Change = {
          kind: 'commit',
          commitLsn,
          seq: seq + 1,
          lsn: walStart,
          xid,
          commitTimeUs,
          endLsn: msg.endLsn,
          eventCount: seq,
        };
        inTxn = false;
        xid = undefined;
        return [change];
      }

      case 'relation': {
        requireTxn('Relation message', walStart);
        const { relation, previous } = relations.apply(msg.relation);
        return [{ kind: 'relation', commitLsn, seq: seq + 1, lsn: walStart !== 0n ? walStart : lastLsn, xid, commitTimeUs, relation, previous }];
      }

      case 'type':
        relations.applyType(msg);
        return NONE;

      case 'origin':
        return NONE;

      case 'insert': {
        requireTxn('Insert', walStart);
        const relation = relationFor(msg.relationOid, 'Insert', walStart);
        checkTuple(relation, msg.newTuple, 'Insert', walStart);
        return [{
          kind: 'insert', commitLsn, seq: ++seq, lsn: walStart, xid, commitTimeUs,
          relation, before: null, beforeKind: null, after: msg.newTuple,
        }];
      }

      case 'update': {
        requireTxn('Update', walStart);
        const relation = relationFor(msg.relationOid, 'Update', walStart);
        checkTuple(relation, msg.newTuple, 'Update', walStart);
        if (msg.oldTuple !== null) checkTuple(relation, msg.oldTuple, 'Update (old tuple)', walStart);
        return [{
          kind: 'update', commitLsn, seq: ++seq, lsn: walStart, xid, commitTimeUs,
          relation, before: msg.oldTuple, beforeKind: msg.oldKind, after: msg.newTuple,
        }];
      }

      case 'delete': {
        requireTxn('Delete', walStart);
        const relation = relationFor(msg.relationOid, 'Delete', walStart);
        checkTuple(relation, msg.oldTuple, 'Delete', walStart);
        return [{
          kind: 'delete', commitLsn, seq: ++seq, lsn: walStart, xid, commitTimeUs,
          relation, before: msg.oldTuple, beforeKind: msg.oldKind, after: null,
        }];
      }

      case 'truncate': {
        requireTxn('Truncate', walStart);
        // Resolve every OID first so an unknown one rejects the whole message.
        const rels = msg.relationOids.map((oid) => relationFor(oid, 'Truncate', walStart));
        return rels.map((relation) => ({
          kind: 'truncate' as const, commitLsn, seq: ++seq, lsn: walStart, xid, commitTimeUs,
          relation, cascade: msg.cascade, restartIdentity: msg.restartIdentity,
        }));
      }

      case 'message':
        if (inTxn) {
          // A non-transactional message is decoded as soon as its record is read, never in
          // the middle of a replayed transaction; should one appear there anyway, numbering
          // it within the transaction keeps positions strictly increasing.
          return [{
            kind: 'message', commitLsn, seq: ++seq, lsn: walStart, xid, commitTimeUs,
            prefix: msg.prefix, content: msg.content, transactional: msg.transactional,
          }];
        }
        if (msg.transactional) requireTxn('transactional logical message', walStart);
        // Outside a transaction: its own LSN is its position, it is the only event there.
        return [{
          kind: 'message', commitLsn: msg.lsn, seq: 1, lsn: walStart, xid: undefined, commitTimeUs: 0n,
          prefix: msg.prefix, content: msg.content, transactional: false,
        }];

      case 'stream_start':
      case 'stream_stop':
      case 'stream_commit':
      case 'stream_abort':
      case 'begin_prepare':
      case 'prepare':
      case 'commit_prepared':
      case 'rollback_prepared':
      case 'stream_prepare':
        return unsupported(msg, walStart);
    }
    // Exhaustiveness: a new tag added to PgoutputMessage must be handled above.
    const never: never = msg;
    throw new TransactionSequenceError(`unhandled pgoutput message ${JSON.stringify((never as { tag: string }).tag)}`);
  }

  return {
    push,
    relations,
    get inTransaction() {
      return inTxn;
    },
  };
}
