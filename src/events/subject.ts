/**
 * NATS subjects for walnats events, and the reversible escaping that turns any Postgres
 * identifier into one subject token.
 *
 * Escaping: `[A-Za-z0-9_-]` stay as they are; every other character becomes `%XX` per UTF-8
 * byte, upper-case hex (`%` itself included, as `%25`). The empty string, which is not a
 * valid token, is written as a lone `%` — a form escaping never produces otherwise, since
 * every `%` it writes is followed by two hex digits. Escaping is a bijection onto its image:
 * `unescapeToken` only accepts the canonical form (upper-case hex, no escaped character that
 * would have been kept, valid UTF-8), so one name has exactly one token and vice versa.
 *
 * Subjects (`<p>` = prefix, `<db>` = escaped database name):
 *
 * | subject | what |
 * |---|---|
 * | `<p>.<db>.<schema>.<table>.<op>` | row changes; op ∈ insert update delete truncate read |
 * | `<p>.<db>.$message.<prefix>` | logical messages (`pg_logical_emit_message`) |
 * | `<p>.<db>.$tx.begin`, `<p>.<db>.$tx.commit` | optional transaction markers |
 * | `<p>.<db>.$schema.<schema>.<table>` | relation shape changes |
 * | `<p>.<db>.$heartbeat` | heartbeats |
 *
 * Reserved subjects have a `$` at the start of the token after the database, which escaping
 * never produces, so they can never equal a table's subject.
 */

export const TABLE_OPS = ['insert', 'update', 'delete', 'truncate', 'read'] as const;
export type TableOp = (typeof TABLE_OPS)[number];

const KEEP = /^[A-Za-z0-9_-]$/;
const HEX = '0123456789ABCDEF';
const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Escapes any string into one valid subject token matching `/^[A-Za-z0-9_%-]+$/`. */
export function escapeToken(name: string): string {
  if (name === '') return '%';
  // Fast path: nothing to escape.
  if (/^[A-Za-z0-9_-]+$/.test(name)) return name;
  let out = '';
  for (const ch of name) {
    if (KEEP.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of encoder.encode(ch)) out += '%' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1; // lower-case hex is not canonical
}

/** Reverses `escapeToken`. Throws on anything `escapeToken` would not have produced. */
export function unescapeToken(token: string): string {
  if (token === '%') return '';
  if (token === '') throw new Error('invalid escaped token: empty (the empty name is written as "%")');
  if (!token.includes('%')) {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new Error(`invalid escaped token ${JSON.stringify(token)}: unexpected character`);
    return token;
  }
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c === 37 /* % */) {
      const hi = i + 2 < token.length ? hexVal(token.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < token.length ? hexVal(token.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) {
        throw new Error(`invalid escaped token ${JSON.stringify(token)}: "%" at ${i} is not followed by two upper-case hex digits`);
      }
      const b = (hi << 4) | lo;
      if (b < 0x80 && KEEP.test(String.fromCharCode(b))) {
        throw new Error(`invalid escaped token ${JSON.stringify(token)}: %${token.slice(i + 1, i + 3)} escapes a character that is never escaped`);
      }
      bytes.push(b);
      i += 2;
    } else if (KEEP.test(token[i])) {
      bytes.push(c);
    } else {
      throw new Error(`invalid escaped token ${JSON.stringify(token)}: unexpected character at ${i}`);
    }
  }
  try {
    return strictDecoder.decode(new Uint8Array(bytes));
  } catch (cause) {
    throw new Error(`invalid escaped token ${JSON.stringify(token)}: escaped bytes are not valid UTF-8`, { cause });
  }
}

/**
 * Validates a subject prefix: one or more dot-separated tokens, none empty, no wildcards
 * (`*`, `>`), no whitespace or control characters, first token not starting with `$`
 * (reserved for the system: `$JS`, `$SYS`) and not `_INBOX`. Returns it unchanged.
 */
export function validatePrefix(prefix: string): string {
  const fail = (why: string): never => {
    throw new Error(`invalid subject prefix ${JSON.stringify(prefix)}: ${why}`);
  };
  if (typeof prefix !== 'string' || prefix === '') fail('empty');
  const tokens = prefix.split('.');
  for (const t of tokens) {
    if (t === '') fail('empty token (leading, trailing or double dot)');
    if (/[\s\x00-\x1f\x7f]/.test(t)) fail('whitespace or control character');
    if (t.includes('*') || t.includes('>')) fail('wildcards (* or >) are not allowed');
  }
  if (tokens[0].startsWith('$')) fail('a first token starting with "$" is reserved for the NATS system');
  if (tokens[0] === '_INBOX') fail('"_INBOX" is reserved for replies');
  return prefix;
}

function base(prefix: string, db: string): string {
  return `${validatePrefix(prefix)}.${escapeToken(db)}`;
}

export function tableSubject(prefix: string, db: string, schema: string, table: string, op: TableOp): string {
  if (!TABLE_OPS.includes(op)) throw new Error(`invalid table op ${JSON.stringify(op)}`);
  return `${base(prefix, db)}.${escapeToken(schema)}.${escapeToken(table)}.${op}`;
}

export function messageSubject(prefix: string, db: string, messagePrefix: string): string {
  return `${base(prefix, db)}.$message.${escapeToken(messagePrefix)}`;
}

export function txSubject(prefix: string, db: string, marker: 'begin' | 'commit'): string {
  return `${base(prefix, db)}.$tx.${marker}`;
}

export function schemaSubject(prefix: string, db: string, schema: string, table: string): string {
  return `${base(prefix, db)}.$schema.${escapeToken(schema)}.${escapeToken(table)}`;
}

/** Prefix of the logical messages the daemon writes as heartbeats; they go to `heartbeatSubject`. */
export const HEARTBEAT_PREFIX = 'walnats.heartbeat';

export function heartbeatSubject(prefix: string, db: string): string {
  return `${base(prefix, db)}.$heartbeat`;
}

/** Where changes that could not become events are parked under `poison_policy: dead_letter`. */
export function deadLetterSubject(prefix: string, db: string, schema: string, table: string): string {
  return `${base(prefix, db)}.$deadletter.${escapeToken(schema)}.${escapeToken(table)}`;
}

/** The subjects of the stream that holds one database's events. */
export function streamSubjects(prefix: string, db: string): string[] {
  return [`${base(prefix, db)}.>`];
}

export type ParsedSubject =
  | { kind: 'table'; db: string; schema: string; table: string; op: TableOp }
  | { kind: 'message'; db: string; prefix: string }
  | { kind: 'tx'; db: string; marker: 'begin' | 'commit' }
  | { kind: 'schema'; db: string; schema: string; table: string }
  | { kind: 'heartbeat'; db: string }
  | { kind: 'deadletter'; db: string; schema: string; table: string };

/**
 * Parses any walnats subject under `prefix`. Returns null when the subject is not under the
 * prefix or has the wrong shape; throws when a token is not a valid escaped name.
 */
export function parseSubject(prefix: string, subject: string): ParsedSubject | null {
  validatePrefix(prefix);
  if (!subject.startsWith(prefix + '.')) return null;
  const t = subject.slice(prefix.length + 1).split('.');
  if (t.length < 2) return null;
  const db = unescapeToken(t[0]);
  const third = t[1];
  if (third.startsWith('$')) {
    switch (third) {
      case '$message':
        return t.length === 3 ? { kind: 'message', db, prefix: unescapeToken(t[2]) } : null;
      case '$tx':
        return t.length === 3 && (t[2] === 'begin' || t[2] === 'commit') ? { kind: 'tx', db, marker: t[2] } : null;
      case '$schema':
        return t.length === 4 ? { kind: 'schema', db, schema: unescapeToken(t[2]), table: unescapeToken(t[3]) } : null;
      case '$heartbeat':
        return t.length === 2 ? { kind: 'heartbeat', db } : null;
      case '$deadletter':
        return t.length === 4 ? { kind: 'deadletter', db, schema: unescapeToken(t[2]), table: unescapeToken(t[3]) } : null;
      default:
        return null;
    }
  }
  if (t.length !== 4) return null;
  const op = t[3] as TableOp;
  if (!TABLE_OPS.includes(op)) return null;
  return { kind: 'table', db, schema: unescapeToken(t[1]), table: unescapeToken(t[2]), op };
}

/** Parses a table subject; null for anything else (reserved subjects included). */
export function parseTableSubject(
  prefix: string,
  subject: string,
): { db: string; schema: string; table: string; op: TableOp } | null {
  const p = parseSubject(prefix, subject);
  if (!p || p.kind !== 'table') return null;
  return { db: p.db, schema: p.schema, table: p.table, op: p.op };
}

/**
 * Default JetStream stream name for one database: `<prefix>_<db>`, each part kept to
 * [A-Za-z0-9] with every other byte as `-XX` (UTF-8, upper-case hex), so the `_` separator is
 * unambiguous: `walnats_shop`, `walnats_my-5Fdb`, `acme-2Ecdc_shop`. No `%`: nats-server
 * (2.9) formats stream names into its ack subjects with Go's fmt, and a `%` there corrupts
 * every acknowledgement. Names longer than 200 characters (file store directory names are
 * limited) are cut to 150 and suffixed with `--` and a 128-bit FNV-1a digest of the full
 * name; `--` never occurs in an uncut name, so cut and uncut names never meet.
 */
export function defaultStreamName(prefix: string, db: string): string {
  validatePrefix(prefix);
  const part = (s: string) => {
    let out = '';
    for (const b of encoder.encode(s)) {
      const alnum = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
      out += alnum ? String.fromCharCode(b) : '-' + b.toString(16).toUpperCase().padStart(2, '0');
    }
    return out;
  };
  const name = `${part(prefix)}_${part(db)}`;
  if (name.length <= 200) return name;
  return `${name.slice(0, 150)}--${fnv(name)}`;
}

/** 128-bit FNV-1a, hex; deterministic and dependency-free (no node:crypto in pure modules). */
function fnv(s: string): string {
  let h = 0x6c62272e07bb014262b821756295c58dn;
  const p = 0x0000000001000000000000000000013bn;
  const m = (1n << 128n) - 1n;
  for (const b of encoder.encode(s)) {
    h ^= BigInt(b);
    h = (h * p) & m;
  }
  return h.toString(16).padStart(32, '0');
}
