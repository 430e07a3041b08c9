/**
 * pgoutput bytes → PgoutputMessage, for protocol versions 1–4. Pure: no I/O, no logging.
 *
 * This is the hot path (every change of the database passes through it), so each message
 * type has its own small function, one Reader is reused, and the only allocations are the
 * returned values. Every returned byte array and string is a copy: the input buffer may be
 * overwritten as soon as decode() returns.
 *
 * Anything malformed — unknown type byte, truncated message, trailing bytes, impossible
 * field values — throws PgoutputDecodeError, never another kind of error and never a
 * half-decoded value.
 */
import type { ReplicaIdentity, RelationColumn, TupleData } from './types.ts';
import type {
  BeginMessage,
  BeginPrepareMessage,
  CommitMessage,
  CommitPreparedMessage,
  DeleteMessage,
  InsertMessage,
  LogicalMessage,
  OriginMessage,
  PgoutputMessage,
  PrepareMessage,
  RelationMessage,
  RollbackPreparedMessage,
  StreamAbortMessage,
  StreamCommitMessage,
  StreamPrepareMessage,
  StreamStartMessage,
  StreamStopMessage,
  TruncateMessage,
  TypeMessage,
  UpdateMessage,
} from './messages.ts';
import { PgoutputDecodeError, Reader, describeByte } from './reader.ts';

export { PgoutputDecodeError } from './reader.ts';

export interface PgoutputDecoderOptions {
  /** The `proto_version` the replication session asked for (1–4). */
  protocolVersion: number;
  /**
   * Whether the session asked for `streaming 'parallel'` (protocol v4): only then does
   * Stream Abort carry the abort LSN and time.
   */
  parallelStreaming?: boolean;
}

export interface DecodeContext extends PgoutputDecoderOptions {
  /** Between Stream Start and Stream Stop: changes carry their transaction's xid (v2+). */
  inStream: boolean;
}

export interface PgoutputDecoder {
  decode(bytes: Uint8Array): PgoutputMessage;
  /** Whether the decoder is between Stream Start and Stream Stop. */
  readonly inStream: boolean;
}

const MAX_PROTOCOL_VERSION = 4;

function checkOptions(opts: PgoutputDecoderOptions): void {
  const v = opts.protocolVersion;
  if (!Number.isInteger(v) || v < 1 || v > MAX_PROTOCOL_VERSION) {
    throw new RangeError(`unsupported pgoutput protocol version ${v}: expected 1 to ${MAX_PROTOCOL_VERSION}`);
  }
}

/**
 * A decoder for one replication session. Its only state is whether it is inside a
 * streaming block, which changes how Relation/Type/Insert/Update/Delete/Truncate/Message
 * are laid out.
 */
export function createPgoutputDecoder(opts: PgoutputDecoderOptions): PgoutputDecoder {
  checkOptions(opts);
  const reader = new Reader();
  const ctx: DecodeContext = {
    protocolVersion: opts.protocolVersion,
    parallelStreaming: opts.parallelStreaming ?? false,
    inStream: false,
  };
  return {
    decode(bytes) {
      const msg = decodeWith(reader, bytes, ctx);
      // Only a fully decoded Stream Start/Stop changes the state, so a rejected message
      // leaves the decoder as it was.
      if (msg.tag === 'stream_start') ctx.inStream = true;
      else if (msg.tag === 'stream_stop') ctx.inStream = false;
      return msg;
    },
    get inStream() {
      return ctx.inStream;
    },
  };
}

const sharedReader = new Reader();

/** Decodes one message with an explicit context; does not track stream blocks. */
export function decodePgoutputMessage(bytes: Uint8Array, ctx: DecodeContext): PgoutputMessage {
  checkOptions(ctx);
  return decodeWith(sharedReader, bytes, ctx);
}

function decodeWith(r: Reader, bytes: Uint8Array, ctx: DecodeContext): PgoutputMessage {
  r.reset(bytes);
  if (bytes.length === 0) throw r.fail('no type byte');
  r.pos = 1;
  // Streamed changes carry the xid of their (sub)transaction right after the type byte.
  const streamed = ctx.inStream && ctx.protocolVersion >= 2;
  let msg: PgoutputMessage;
  switch (bytes[0]) {
    case 0x42 /* B */: msg = begin(r); break;
    case 0x43 /* C */: msg = commit(r); break;
    case 0x4f /* O */: msg = origin(r); break;
    case 0x52 /* R */: msg = relation(r, streamed); break;
    case 0x59 /* Y */: msg = type(r, streamed); break;
    case 0x49 /* I */: msg = insert(r, streamed); break;
    case 0x55 /* U */: msg = update(r, streamed); break;
    case 0x44 /* D */: msg = del(r, streamed); break;
    case 0x54 /* T */: msg = truncate(r, streamed); break;
    case 0x4d /* M */: msg = message(r, streamed); break;
    case 0x53 /* S */: msg = streamStart(r); break;
    case 0x45 /* E */: msg = streamStop(); break;
    case 0x63 /* c */: msg = streamCommit(r); break;
    case 0x41 /* A */: msg = streamAbort(r, ctx.protocolVersion >= 4 && ctx.parallelStreaming === true); break;
    case 0x62 /* b */: msg = beginPrepare(r); break;
    case 0x50 /* P */: msg = prepare(r, 'prepare'); break;
    case 0x4b /* K */: msg = commitPrepared(r); break;
    case 0x72 /* r */: msg = rollbackPrepared(r); break;
    case 0x70 /* p */: msg = prepare(r, 'stream_prepare'); break;
    default:
      throw new PgoutputDecodeError(
        `unknown pgoutput message type ${describeByte(bytes[0])} (${bytes.length} byte(s))`,
        bytes[0],
        0,
      );
  }
  r.end();
  return msg;
}

function begin(r: Reader): BeginMessage {
  const finalLsn = r.uint64('final LSN');
  const commitTimeUs = r.int64('commit time');
  const xid = r.uint32('xid');
  return { tag: 'begin', finalLsn, commitTimeUs, xid };
}

function commit(r: Reader): CommitMessage {
  const flags = r.uint8('flags');
  const commitLsn = r.uint64('commit LSN');
  const endLsn = r.uint64('end LSN');
  const commitTimeUs = r.int64('commit time');
  return { tag: 'commit', flags, commitLsn, endLsn, commitTimeUs };
}

function origin(r: Reader): OriginMessage {
  const originLsn = r.uint64('origin LSN');
  const name = r.cstring('origin name');
  return { tag: 'origin', originLsn, name };
}

function replicaIdentity(r: Reader): ReplicaIdentity {
  const c = r.uint8('replica identity');
  switch (c) {
    case 0x64 /* d */: return 'default';
    case 0x6e /* n */: return 'nothing';
    case 0x66 /* f */: return 'full';
    case 0x69 /* i */: return 'index';
  }
  r.pos--;
  throw r.fail(`unknown replica identity ${describeByte(c)}`);
}

function relation(r: Reader, streamed: boolean): RelationMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const oid = r.uint32('relation OID');
  const schema = r.cstring('namespace');
  const name = r.cstring('relation name');
  const ident = replicaIdentity(r);
  const n = r.uint16('column count');
  const columns: RelationColumn[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const flags = r.uint8('column flags');
    const colName = r.cstring('column name');
    const typeOid = r.uint32('column type OID');
    const typeMod = r.int32('column type modifier');
    columns[i] = { name: colName, typeOid, typeMod, isKey: (flags & 1) !== 0 };
  }
  return { tag: 'relation', xid, relation: { oid, schema, name, replicaIdentity: ident, columns } };
}

function type(r: Reader, streamed: boolean): TypeMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const typeOid = r.uint32('type OID');
  const schema = r.cstring('type namespace');
  const name = r.cstring('type name');
  return { tag: 'type', xid, typeOid, schema, name };
}

function tuple(r: Reader): TupleData {
  const n = r.uint16('tuple column count');
  const values: TupleData = new Array(n);
  for (let i = 0; i < n; i++) {
    const kind = r.uint8('tuple column kind');
    switch (kind) {
      case 0x6e /* n */:
        values[i] = null;
        break;
      case 0x75 /* u */:
        values[i] = undefined;
        break;
      case 0x74 /* t */: {
        const len = r.int32('text value length');
        if (len < 0) throw r.fail(`negative text value length ${len}`);
        values[i] = r.text(len, 'text value');
        break;
      }
      case 0x62 /* b */: {
        const len = r.int32('binary value length');
        if (len < 0) throw r.fail(`negative binary value length ${len}`);
        values[i] = r.bytes(len, 'binary value');
        break;
      }
      default:
        r.pos--;
        throw r.fail(`unknown tuple column kind ${describeByte(kind)} for column ${i + 1} of ${n}`);
    }
  }
  return values;
}

function insert(r: Reader, streamed: boolean): InsertMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const relationOid = r.uint32('relation OID');
  expectByte(r, 0x4e /* N */, "'N' (new tuple)");
  const newTuple = tuple(r);
  return { tag: 'insert', xid, relationOid, newTuple };
}

function expectByte(r: Reader, want: number, what: string): void {
  const got = r.uint8(what);
  if (got !== want) {
    r.pos--;
    throw r.fail(`expected ${what}, got ${describeByte(got)}`);
  }
}

function update(r: Reader, streamed: boolean): UpdateMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const relationOid = r.uint32('relation OID');
  let oldKind: 'key' | 'old' | null = null;
  let oldTuple: TupleData | null = null;
  let sub = r.uint8("tuple kind 'K', 'O' or 'N'");
  if (sub === 0x4b /* K */ || sub === 0x4f /* O */) {
    oldKind = sub === 0x4b ? 'key' : 'old';
    oldTuple = tuple(r);
    sub = r.uint8("'N' (new tuple)");
  }
  if (sub !== 0x4e /* N */) {
    r.pos--;
    throw r.fail(`expected 'N' (new tuple), got ${describeByte(sub)}`);
  }
  const newTuple = tuple(r);
  return { tag: 'update', xid, relationOid, oldKind, oldTuple, newTuple };
}

function del(r: Reader, streamed: boolean): DeleteMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const relationOid = r.uint32('relation OID');
  const sub = r.uint8("tuple kind 'K' or 'O'");
  if (sub !== 0x4b /* K */ && sub !== 0x4f /* O */) {
    r.pos--;
    throw r.fail(`expected 'K' (key) or 'O' (old tuple), got ${describeByte(sub)}`);
  }
  const oldTuple = tuple(r);
  return { tag: 'delete', xid, relationOid, oldKind: sub === 0x4b ? 'key' : 'old', oldTuple };
}

function truncate(r: Reader, streamed: boolean): TruncateMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const n = r.int32('relation count');
  if (n < 0) throw r.fail(`negative relation count ${n}`);
  const options = r.uint8('options');
  // Check the length before allocating: a corrupt count must not allocate gigabytes.
  if (r.remaining < n * 4) {
    throw r.fail(`truncated: ${n} relation OIDs need ${n * 4} byte(s), ${r.remaining} available`);
  }
  const relationOids: number[] = new Array(n);
  for (let i = 0; i < n; i++) relationOids[i] = r.uint32('relation OID');
  return {
    tag: 'truncate',
    xid,
    options,
    cascade: (options & 1) !== 0,
    restartIdentity: (options & 2) !== 0,
    relationOids,
  };
}

function message(r: Reader, streamed: boolean): LogicalMessage {
  const xid = streamed ? r.uint32('xid') : undefined;
  const flags = r.uint8('flags');
  const lsn = r.uint64('message LSN');
  const prefix = r.cstring('prefix');
  const len = r.int32('content length');
  if (len < 0) throw r.fail(`negative content length ${len}`);
  const content = r.bytes(len, 'content');
  return { tag: 'message', xid, flags, transactional: (flags & 1) !== 0, lsn, prefix, content };
}

function streamStart(r: Reader): StreamStartMessage {
  const xid = r.uint32('xid');
  const first = r.uint8('first segment flag');
  return { tag: 'stream_start', xid, firstSegment: first === 1 };
}

const STREAM_STOP: StreamStopMessage = Object.freeze({ tag: 'stream_stop' }) as StreamStopMessage;

function streamStop(): StreamStopMessage {
  return STREAM_STOP;
}

function streamCommit(r: Reader): StreamCommitMessage {
  const xid = r.uint32('xid');
  const flags = r.uint8('flags');
  const commitLsn = r.uint64('commit LSN');
  const endLsn = r.uint64('end LSN');
  const commitTimeUs = r.int64('commit time');
  return { tag: 'stream_commit', xid, flags, commitLsn, endLsn, commitTimeUs };
}

function streamAbort(r: Reader, withAbortInfo: boolean): StreamAbortMessage {
  const xid = r.uint32('xid');
  const subxid = r.uint32('subtransaction xid');
  let abortLsn: bigint | undefined;
  let abortTimeUs: bigint | undefined;
  if (withAbortInfo) {
    abortLsn = r.uint64('abort LSN');
    abortTimeUs = r.int64('abort time');
  }
  return { tag: 'stream_abort', xid, subxid, abortLsn, abortTimeUs };
}

function beginPrepare(r: Reader): BeginPrepareMessage {
  const prepareLsn = r.uint64('prepare LSN');
  const endLsn = r.uint64('end LSN');
  const prepareTimeUs = r.int64('prepare time');
  const xid = r.uint32('xid');
  const gid = r.cstring('gid');
  return { tag: 'begin_prepare', prepareLsn, endLsn, prepareTimeUs, xid, gid };
}

/** Prepare ('P') and Stream Prepare ('p') have the same layout. */
function prepare(r: Reader, tag: 'prepare' | 'stream_prepare'): PrepareMessage | StreamPrepareMessage {
  const flags = r.uint8('flags');
  const prepareLsn = r.uint64('prepare LSN');
  const endLsn = r.uint64('end LSN');
  const prepareTimeUs = r.int64('prepare time');
  const xid = r.uint32('xid');
  const gid = r.cstring('gid');
  return { tag, flags, prepareLsn, endLsn, prepareTimeUs, xid, gid };
}

function commitPrepared(r: Reader): CommitPreparedMessage {
  const flags = r.uint8('flags');
  const commitLsn = r.uint64('commit LSN');
  const endLsn = r.uint64('end LSN');
  const commitTimeUs = r.int64('commit time');
  const xid = r.uint32('xid');
  const gid = r.cstring('gid');
  return { tag: 'commit_prepared', flags, commitLsn, endLsn, commitTimeUs, xid, gid };
}

function rollbackPrepared(r: Reader): RollbackPreparedMessage {
  const flags = r.uint8('flags');
  const prepareEndLsn = r.uint64('prepare end LSN');
  const rollbackEndLsn = r.uint64('rollback end LSN');
  const prepareTimeUs = r.int64('prepare time');
  const rollbackTimeUs = r.int64('rollback time');
  const xid = r.uint32('xid');
  const gid = r.cstring('gid');
  return { tag: 'rollback_prepared', flags, prepareEndLsn, rollbackEndLsn, prepareTimeUs, rollbackTimeUs, xid, gid };
}
