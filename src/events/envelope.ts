/**
 * Change → OutboundEvent: subject, Nats-Msg-Id, headers and the JSON body (DESIGN §3).
 *
 * The body is built by string concatenation from JSON texts that the value converter
 * returns, so int8 digits and json/jsonb texts reach the consumer byte-exact: row values are
 * never parsed or re-serialised here.
 *
 * Body shapes (keys in this order):
 * - insert/update/delete: `{"op":"c|u|d","before":…,"after":…,"source":{…},"ts_ms":…}` plus
 *   `"unchanged":[…]` when some column's unchanged TOASTed value was not sent (only then).
 * - truncate: `{"op":"t","before":null,"after":null,"source":{…},"ts_ms":…,
 *   "truncate":{"cascade":…,"restart_identity":…}}`
 * - logical message (subject `$message.<prefix>`, `$heartbeat` for the daemon's heartbeats):
 *   `{"op":"m","source":{…},"ts_ms":…,"message":{"prefix":…,
 *   "content":<base64>,"content_text":<text, only when the content is valid UTF-8>,
 *   "transactional":…}}`; `source.schema` and `source.table` are null.
 * - schema change: `{"op":"schema","relation":{…},"previous":{…}|null,"source":{…},"ts_ms":…}`
 * - snapshot read: as insert with `"op":"r"`, subject `….read`; `source.snapshot` true,
 *   `source.lsn` = `source.commit_lsn` = the snapshot's LSN, `source.seq` 0.
 * - transaction markers (option `transactionMarkers`, default off):
 *   `{"op":"begin"|"commit","source":{…},"ts_ms":…,"transaction":{"id":txid,
 *   "commit_lsn":…[,"event_count":n,"end_lsn":…]}}`
 *
 * Message ids (`Nats-Msg-Id`), identical on every replay:
 * - row, truncate and message events: `<commit_lsn>:<seq>`
 * - schema events: `<commit_lsn>:<seq>:schema:<relation oid>` (seq of the event that follows)
 * - begin marker `<commit_lsn>:0`, commit marker `<commit_lsn>:<eventCount + 1>`
 * - snapshot reads: `snapshot:<escaped snapshot id>:<table oid>:<row index>`, where the
 *   snapshot id names one snapshot run (the exported snapshot's name, or a backfill id) and
 *   the row index counts the rows of that table in that run from 0.
 *
 * Headers: `Nats-Msg-Id`, `Walnats-Op`, `Walnats-Schema` and `Walnats-Table` (escaped as
 * subject tokens, so that any name survives MIME header rules), `Walnats-Lsn`,
 * `Walnats-Commit-Lsn`, `Walnats-Seq`; messages add `Walnats-Message-Prefix` (escaped), reads
 * `Walnats-Snapshot` (escaped), `Walnats-Table-Oid` and `Walnats-Row`.
 */
import { Buffer } from 'node:buffer';
import { formatLsn, type Lsn } from '../lsn.ts';
import { pgTimeToUnixMs } from '../decoder/time.ts';
import type {
  BeginChange,
  Change,
  CommitChange,
  MessageChange,
  Relation,
  RelationChange,
  RowChange,
  TruncateChange,
  TupleData,
} from '../decoder/types.ts';
import {
  escapeToken,
  HEARTBEAT_PREFIX,
  heartbeatSubject,
  messageSubject,
  schemaSubject,
  streamSubjects,
  type TableOp,
  txSubject,
  validatePrefix,
} from './subject.ts';
import {
  eventMsgId,
  HEADER_COMMIT_LSN,
  HEADER_LSN,
  HEADER_MESSAGE_PREFIX,
  HEADER_MSG_ID,
  HEADER_OP,
  HEADER_ROW,
  HEADER_SCHEMA,
  HEADER_SEQ,
  HEADER_SNAPSHOT,
  HEADER_TABLE,
  HEADER_TABLE_OID,
  type EventKind,
} from './position.ts';

export interface OutboundEvent {
  subject: string;
  /** Nats-Msg-Id (also present in `headers`). */
  msgId: string;
  headers: Array<[string, string]>;
  body: Uint8Array;
  /** Position of the event: commit LSN of its transaction (a read's snapshot LSN). */
  commitLsn: Lsn;
  seq: number;
  kind: EventKind;
}

/** Postgres text value → JSON text. */
export type ValueConverter = (text: string, typeOid: number) => string;

export interface EventBuilderOptions {
  prefix: string;
  database: string;
  convert: ValueConverter;
  /** Milliseconds since 1970 for the top-level `ts_ms`; default `Date.now`. */
  now?: () => number;
  /** Build `$tx.begin` / `$tx.commit` events for Begin/Commit changes (default false). */
  transactionMarkers?: boolean;
}

export interface SnapshotReadInfo {
  /** Names the snapshot run: the exported snapshot's name, or a backfill id. */
  snapshotId: string;
  /** 0-based index of the row within this table in this snapshot run. */
  rowIndex: number;
  /** LSN the snapshot is consistent with (the slot's consistent point, or a watermark). */
  lsn: Lsn;
  /** Transaction id of the snapshot, if known. */
  txid?: number;
  /** Time of the snapshot in ms since 1970, for `source.ts_ms`; default now(). */
  tsMs?: number;
}

export interface EventBuilder {
  /**
   * The event for one change. Null for Relation changes (see `buildSchemaEvent`) and for
   * Begin/Commit unless `transactionMarkers` is on.
   */
  build(change: Change): OutboundEvent | null;
  /** A `$schema.<schema>.<table>` event describing a relation's (new) shape. */
  buildSchemaEvent(change: RelationChange): OutboundEvent;
  /** An `op: "r"` event for one snapshot/backfill row (full row in relation column order). */
  buildReadEvent(relation: Relation, row: TupleData, info: SnapshotReadInfo): OutboundEvent;
}

/** `source`'s names for events of no table (messages, transaction markers). */
const NO_TABLE = '"schema":null,"table":null';
const OPS: Record<RowChange['kind'], { code: string; op: TableOp }> = {
  insert: { code: 'c', op: 'insert' },
  update: { code: 'u', op: 'update' },
  delete: { code: 'd', op: 'delete' },
};

/** Commit time (µs since 2000-01-01) → ms since 1970, floored. */
export { pgTimeToUnixMs as commitTimeToMs };

interface RelInfo {
  columns: Relation['columns'];
  schema: string;
  name: string;
  quotedNames: string[];
  /** `"schema":…,"table":…` fragment of source. */
  sourceNames: string;
  schemaToken: string;
  tableToken: string;
  subjectBase: string;
}

/**
 * UTF-8 bytes of a body. Buffer.from takes small results from Node's shared pool instead of a
 * new ArrayBuffer each (as TextEncoder.encode does): several times cheaper per event. The
 * bytes are the same; a Buffer is a Uint8Array.
 */
function encodeBody(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function createEventBuilder(options: EventBuilderOptions): EventBuilder {
  const prefix = validatePrefix(options.prefix);
  const database = options.database;
  const convert = options.convert;
  const now = options.now ?? Date.now;
  const markers = options.transactionMarkers ?? false;
  const dbJson = JSON.stringify(database);
  // streamSubjects gives `<prefix>.<db>.>`; strip the `>`.
  const dbBase = streamSubjects(prefix, database)[0].slice(0, -1);
  const relCache = new WeakMap<Relation, RelInfo>();
  const heartbeat = heartbeatSubject(prefix, database);
  const txSubjects = { begin: txSubject(prefix, database, 'begin'), commit: txSubject(prefix, database, 'commit') };

  function rel(r: Relation): RelInfo {
    let info = relCache.get(r);
    if (info && info.columns === r.columns && info.schema === r.schema && info.name === r.name) return info;
    const schemaToken = escapeToken(r.schema);
    const tableToken = escapeToken(r.name);
    info = {
      columns: r.columns,
      schema: r.schema,
      name: r.name,
      quotedNames: r.columns.map((c) => JSON.stringify(c.name)),
      sourceNames: `"schema":${JSON.stringify(r.schema)},"table":${JSON.stringify(r.name)}`,
      schemaToken,
      tableToken,
      subjectBase: `${dbBase}${schemaToken}.${tableToken}.`,
    };
    relCache.set(r, info);
    return info;
  }

  function value(r: Relation, i: number, v: string | Uint8Array | null): string {
    if (v === null) return 'null';
    const col = r.columns[i];
    if (typeof v !== 'string') {
      throw new Error(
        `column ${JSON.stringify(col?.name)} of ${r.schema}.${r.name} arrived in binary format, which walnats does not request`,
      );
    }
    try {
      return convert(v, col.typeOid);
    } catch (cause) {
      throw new Error(
        `cannot convert column ${JSON.stringify(col.name)} of ${r.schema}.${r.name} (type oid ${col.typeOid}) to JSON`,
        { cause },
      );
    }
  }

  function checkWidth(r: Relation, tuple: TupleData, what: string) {
    if (tuple.length !== r.columns.length) {
      throw new Error(
        `${what} tuple of ${r.schema}.${r.name} has ${tuple.length} columns, relation has ${r.columns.length}`,
      );
    }
  }

  /** Object of a before tuple: key columns only for 'key', every sent column for 'old'. */
  function beforeObject(r: Relation, ri: RelInfo, tuple: TupleData, kind: 'key' | 'old'): string {
    checkWidth(r, tuple, kind === 'key' ? 'old key' : 'old');
    let out = '{';
    let first = true;
    for (let i = 0; i < tuple.length; i++) {
      const v = tuple[i];
      if (v === undefined) continue; // not sent
      if (kind === 'key' && !r.columns[i].isKey) continue;
      out += (first ? '' : ',') + ri.quotedNames[i] + ':' + value(r, i, v);
      first = false;
    }
    return out + '}';
  }

  /** Object of an after tuple; unchanged TOAST filled from `before` where it holds the value. */
  function afterObject(
    r: Relation,
    ri: RelInfo,
    tuple: TupleData,
    before: TupleData | null,
    beforeKind: 'key' | 'old' | null,
    unchanged: string[],
  ): string {
    checkWidth(r, tuple, 'new');
    let out = '{';
    let first = true;
    for (let i = 0; i < tuple.length; i++) {
      let v = tuple[i];
      if (v === undefined) {
        const b = before && beforeKind && (beforeKind === 'old' || r.columns[i].isKey) ? before[i] : undefined;
        if (b === undefined) {
          unchanged.push(ri.quotedNames[i]);
          continue;
        }
        v = b;
      }
      out += (first ? '' : ',') + ri.quotedNames[i] + ':' + value(r, i, v);
      first = false;
    }
    return out + '}';
  }

  // The commit LSN's text, for every event of a transaction: formatted once (one-entry cache).
  let lastCommit: Lsn = -1n;
  let lastCommitText = '';
  function commitText(lsn: Lsn): string {
    if (lsn !== lastCommit) {
      lastCommitText = formatLsn(lsn);
      lastCommit = lsn;
    }
    return lastCommitText;
  }

  function source(
    names: string,
    lsn: string,
    commitLsn: string,
    seq: number,
    txid: number | undefined,
    tsMs: number,
    snapshot: boolean,
  ): string {
    return (
      `{"connector":"walnats","db":${dbJson},${names},"lsn":"${lsn}","commit_lsn":"${commitLsn}",` +
      `"seq":${seq},"txid":${txid === undefined ? 'null' : txid},"ts_ms":${tsMs},"snapshot":${snapshot}}`
    );
  }

  /** `source` of an event decoded from the WAL: the change's xid and commit time. */
  function walSource(names: string, lsn: string, commitLsn: string, seq: number, c: Change): string {
    return source(names, lsn, commitLsn, seq, c.xid, pgTimeToUnixMs(c.commitTimeUs), false);
  }

  function headers(
    msgId: string,
    op: EventKind,
    lsn: string,
    commitLsn: string,
    seq: number,
    ri?: RelInfo,
  ): Array<[string, string]> {
    const h: Array<[string, string]> = [
      [HEADER_MSG_ID, msgId],
      [HEADER_OP, op],
    ];
    if (ri) h.push([HEADER_SCHEMA, ri.schemaToken], [HEADER_TABLE, ri.tableToken]);
    h.push([HEADER_LSN, lsn], [HEADER_COMMIT_LSN, commitLsn], [HEADER_SEQ, String(seq)]);
    return h;
  }

  function rowEvent(c: RowChange): OutboundEvent {
    const r = c.relation;
    const ri = rel(r);
    const { code, op } = OPS[c.kind];
    const unchanged: string[] = [];
    let before = 'null';
    if (c.before && c.beforeKind) before = beforeObject(r, ri, c.before, c.beforeKind);
    let after = 'null';
    if (c.kind !== 'delete') {
      if (!c.after) throw new Error(`${c.kind} of ${r.schema}.${r.name} at ${eventMsgId(c.commitLsn, c.seq)} has no new tuple`);
      after = afterObject(r, ri, c.after, c.before, c.beforeKind, unchanged);
    }
    const lsn = formatLsn(c.lsn);
    const commit = commitText(c.commitLsn);
    const msgId = `${commit}:${c.seq}`;
    let body =
      `{"op":"${code}","before":${before},"after":${after},` +
      `"source":${walSource(ri.sourceNames, lsn, commit, c.seq, c)},` +
      `"ts_ms":${now()}`;
    if (unchanged.length > 0) body += `,"unchanged":[${unchanged.join(',')}]`;
    body += '}';
    return {
      subject: ri.subjectBase + op,
      msgId,
      headers: headers(msgId, op, lsn, commit, c.seq, ri),
      body: encodeBody(body),
      commitLsn: c.commitLsn,
      seq: c.seq,
      kind: op,
    };
  }

  function truncateEvent(c: TruncateChange): OutboundEvent {
    const ri = rel(c.relation);
    const lsn = formatLsn(c.lsn);
    const commit = commitText(c.commitLsn);
    const msgId = `${commit}:${c.seq}`;
    const body =
      `{"op":"t","before":null,"after":null,` +
      `"source":${walSource(ri.sourceNames, lsn, commit, c.seq, c)},` +
      `"ts_ms":${now()},"truncate":{"cascade":${c.cascade},"restart_identity":${c.restartIdentity}}}`;
    return {
      subject: ri.subjectBase + 'truncate',
      msgId,
      headers: headers(msgId, 'truncate', lsn, commit, c.seq, ri),
      body: encodeBody(body),
      commitLsn: c.commitLsn,
      seq: c.seq,
      kind: 'truncate',
    };
  }

  function messageEvent(c: MessageChange): OutboundEvent {
    const lsn = formatLsn(c.lsn);
    const commit = commitText(c.commitLsn);
    const msgId = `${commit}:${c.seq}`;
    let text: string | undefined;
    try {
      text = strictUtf8.decode(c.content);
    } catch {
      text = undefined;
    }
    const content = Buffer.from(c.content.buffer, c.content.byteOffset, c.content.byteLength).toString('base64');
    const body =
      `{"op":"m",` +
      `"source":${walSource(NO_TABLE, lsn, commit, c.seq, c)},` +
      `"ts_ms":${now()},"message":{"prefix":${JSON.stringify(c.prefix)},"content":"${content}"` +
      (text === undefined ? '' : `,"content_text":${JSON.stringify(text)}`) +
      `,"transactional":${c.transactional}}}`;
    const h = headers(msgId, 'message', lsn, commit, c.seq);
    h.push([HEADER_MESSAGE_PREFIX, escapeToken(c.prefix)]);
    return {
      subject: c.prefix === HEARTBEAT_PREFIX ? heartbeat : messageSubject(prefix, database, c.prefix),
      msgId,
      headers: h,
      body: encodeBody(body),
      commitLsn: c.commitLsn,
      seq: c.seq,
      kind: 'message',
    };
  }

  function markerEvent(c: BeginChange | CommitChange): OutboundEvent {
    const seq = c.kind === 'begin' ? 0 : c.eventCount + 1;
    const lsn = formatLsn(c.lsn);
    const commit = commitText(c.commitLsn);
    const msgId = `${commit}:${seq}`;
    let tx = `{"id":${c.xid === undefined ? 'null' : c.xid},"commit_lsn":"${commit}"`;
    if (c.kind === 'commit') tx += `,"event_count":${c.eventCount},"end_lsn":"${formatLsn(c.endLsn)}"`;
    tx += '}';
    const body =
      `{"op":"${c.kind}",` +
      `"source":${walSource(NO_TABLE, lsn, commit, seq, c)},` +
      `"ts_ms":${now()},"transaction":${tx}}`;
    return {
      subject: txSubjects[c.kind],
      msgId,
      headers: headers(msgId, c.kind, lsn, commit, seq),
      body: encodeBody(body),
      commitLsn: c.commitLsn,
      seq,
      kind: c.kind,
    };
  }

  function relationJson(r: Relation): string {
    const cols = r.columns
      .map(
        (c) =>
          `{"name":${JSON.stringify(c.name)},"type_oid":${c.typeOid},"type_mod":${c.typeMod},"key":${c.isKey}}`,
      )
      .join(',');
    return (
      `{"oid":${r.oid},"schema":${JSON.stringify(r.schema)},"table":${JSON.stringify(r.name)},` +
      `"replica_identity":"${r.replicaIdentity}","columns":[${cols}]}`
    );
  }

  return {
    build(change: Change): OutboundEvent | null {
      switch (change.kind) {
        case 'insert':
        case 'update':
        case 'delete':
          return rowEvent(change);
        case 'truncate':
          return truncateEvent(change);
        case 'message':
          return messageEvent(change);
        case 'begin':
        case 'commit':
          return markers ? markerEvent(change) : null;
        case 'relation':
          return null;
        default: {
          const never: never = change;
          throw new Error(`unknown change kind ${JSON.stringify((never as { kind: unknown }).kind)}`);
        }
      }
    },

    buildSchemaEvent(c: RelationChange): OutboundEvent {
      const r = c.relation;
      const ri = rel(r);
      const lsn = formatLsn(c.lsn);
      const commit = commitText(c.commitLsn);
      const msgId = `${commit}:${c.seq}:schema:${r.oid}`;
      const body =
        `{"op":"schema","relation":${relationJson(r)},"previous":${c.previous ? relationJson(c.previous) : 'null'},` +
        `"source":${walSource(ri.sourceNames, lsn, commit, c.seq, c)},` +
        `"ts_ms":${now()}}`;
      return {
        subject: schemaSubject(prefix, database, r.schema, r.name),
        msgId,
        headers: headers(msgId, 'schema', lsn, commit, c.seq, ri),
        body: encodeBody(body),
        commitLsn: c.commitLsn,
        seq: c.seq,
        kind: 'schema',
      };
    },

    buildReadEvent(r: Relation, row: TupleData, info: SnapshotReadInfo): OutboundEvent {
      const ri = rel(r);
      if (!Number.isSafeInteger(info.rowIndex) || info.rowIndex < 0) throw new Error(`invalid snapshot row index ${info.rowIndex}`);
      const unchanged: string[] = [];
      const after = afterObject(r, ri, row, null, null, unchanged);
      const snap = escapeToken(info.snapshotId);
      const msgId = `snapshot:${snap}:${r.oid}:${info.rowIndex}`;
      const t = now();
      const lsn = formatLsn(info.lsn);
      let body =
        `{"op":"r","before":null,"after":${after},` +
        `"source":${source(ri.sourceNames, lsn, lsn, 0, info.txid, info.tsMs ?? t, true)},` +
        `"ts_ms":${t}`;
      if (unchanged.length > 0) body += `,"unchanged":[${unchanged.join(',')}]`;
      body += '}';
      const h = headers(msgId, 'read', lsn, lsn, 0, ri);
      h.push([HEADER_SNAPSHOT, snap], [HEADER_TABLE_OID, String(r.oid)], [HEADER_ROW, String(info.rowIndex)]);
      return {
        subject: ri.subjectBase + 'read',
        msgId,
        headers: h,
        body: encodeBody(body),
        commitLsn: info.lsn,
        seq: 0,
        kind: 'read',
      };
    },
  };
}
