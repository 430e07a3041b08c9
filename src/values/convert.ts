/**
 * Postgres text output → JSON text, per DESIGN.md §3. The input is what the type's output
 * function prints under the pinned session settings (src/values/session.ts); pgoutput
 * streams exactly that text, and a snapshot SELECT under the same settings reads it too, so
 * both give byte-identical JSON.
 *
 * The result is JSON *text*, never a JS value: int8 beyond 2^53 keeps its digits and json
 * is spliced in exactly as Postgres sent it. This runs once per column of every change, so
 * it checks characters by hand instead of using regexes and allocates nothing for scalars
 * beyond the result string. Input it does not recognise is an error naming the type and the
 * start of the text — never a guessed value.
 */
import type { TypeInfo } from './types.ts';
import { arrayToJson } from './arrays.ts';
import { malformed } from './errors.ts';

/** Converts one non-NULL value's text to JSON text. SQL NULL is the caller's `null`. */
export function textToJson(text: string, type: TypeInfo): string {
  switch (type.kind) {
    case 'string':
    case 'other':
      return JSON.stringify(text);
    case 'int':
      if (isJsonInteger(text)) return text;
      throw malformed(type, text, 'not an integer');
    case 'bool':
      if (text === 't') return 'true';
      if (text === 'f') return 'false';
      throw malformed(type, text, "expected 't' or 'f'");
    case 'float':
      if (isJsonNumber(text)) return text;
      if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return `"${text}"`;
      throw malformed(type, text, 'not a number');
    case 'numeric':
      if (isJsonNumber(text) || text === 'NaN' || text === 'Infinity' || text === '-Infinity') return `"${text}"`;
      throw malformed(type, text, 'not a number');
    case 'money':
      return moneyToJson(text, type);
    case 'json':
    case 'jsonb':
      // Postgres validated it on input; splice it in as sent (json keeps its exact text).
      if (text.length === 0) throw malformed(type, text, 'empty JSON text');
      return text;
    case 'bytea':
      return byteaToJson(text, type);
    case 'date':
      return dateToJson(text, type);
    case 'timestamp':
      return timestampToJson(text, type, false);
    case 'timestamptz':
      return timestampToJson(text, type, true);
    case 'interval':
      return intervalToJson(text, type);
    case 'time':
      if (isTimeText(text)) return `"${text}"`;
      throw malformed(type, text, 'not a time of day');
    case 'array':
      return arrayToJson(text, type, textToJson);
  }
}

const C_0 = 48;
const C_9 = 57;
const C_MINUS = 45;
const C_PLUS = 43;
const C_DOT = 46;
const C_COLON = 58;
const C_SPACE = 32;
const C_COMMA = 44;
const C_DOLLAR = 36;

function isDigit(c: number): boolean {
  return c >= C_0 && c <= C_9;
}

/** Index after the run of digits starting at `i`. */
function skipDigits(s: string, i: number): number {
  while (i < s.length && isDigit(s.charCodeAt(i))) i++;
  return i;
}

/** `-?(0|[1-9][0-9]*)` — what int2/int4/int8/oid/xid print, and valid JSON as is. */
function isJsonInteger(s: string): boolean {
  let i = s.charCodeAt(0) === C_MINUS ? 1 : 0;
  const start = i;
  const end = skipDigits(s, i);
  if (end !== s.length || end === start) return false;
  return !(s.charCodeAt(start) === C_0 && end - start > 1);
}

/** The JSON number grammar (RFC 8259 §6); Postgres floats print `1e+100`, `-0`, `1e-05`. */
function isJsonNumber(s: string): boolean {
  let i = s.charCodeAt(0) === C_MINUS ? 1 : 0;
  const intStart = i;
  i = skipDigits(s, i);
  if (i === intStart || (s.charCodeAt(intStart) === C_0 && i - intStart > 1)) return false;
  if (s.charCodeAt(i) === C_DOT) {
    const fracStart = ++i;
    i = skipDigits(s, i);
    if (i === fracStart) return false;
  }
  const e = s.charCodeAt(i);
  if (e === 101 /* e */ || e === 69 /* E */) {
    i++;
    const sign = s.charCodeAt(i);
    if (sign === C_PLUS || sign === C_MINUS) i++;
    const expStart = i;
    i = skipDigits(s, i);
    if (i === expStart) return false;
  }
  return i === s.length;
}

/**
 * money under lc_monetary=C prints `$1,234.50` or `-$1.50`: drop the sign and separators,
 * keep every digit (money is an int8 of cents, so no float detour).
 */
function moneyToJson(text: string, type: TypeInfo): string {
  let i = 0;
  let out = '"';
  if (text.charCodeAt(0) === C_MINUS) {
    out += '-';
    i = 1;
  }
  if (text.charCodeAt(i) !== C_DOLLAR) throw malformed(type, text, "expected '$' (is lc_monetary=C pinned?)");
  i++;
  let digits = 0;
  let runStart = i;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isDigit(c)) {
      digits++;
      continue;
    }
    if (c === C_COMMA && digits > 0) {
      out += text.slice(runStart, i);
      runStart = i + 1;
      continue;
    }
    break;
  }
  if (digits === 0) throw malformed(type, text, 'no digits');
  out += text.slice(runStart, i);
  if (i < text.length) {
    if (text.charCodeAt(i) !== C_DOT) throw malformed(type, text, 'unexpected character');
    const fracStart = i + 1;
    const end = skipDigits(text, fracStart);
    if (end === fracStart || end !== text.length) throw malformed(type, text, 'bad fraction');
    out += text.slice(i, end);
  }
  return out + '"';
}

/** bytea_output=hex prints `\x0a0b`; JSON gets the bytes in base64. */
function byteaToJson(text: string, type: TypeInfo): string {
  if (text.charCodeAt(0) !== 92 /* \ */ || text.charCodeAt(1) !== 120 /* x */) {
    throw malformed(type, text, "expected hex output '\\x…' (is bytea_output=hex pinned?)");
  }
  const hexLength = text.length - 2;
  if (hexLength === 0) return '""';
  // Buffer.from(…, 'hex') stops silently at the first bad pair: compare lengths.
  const bytes = Buffer.from(text.slice(2), 'hex');
  if (hexLength % 2 !== 0 || bytes.length * 2 !== hexLength) throw malformed(type, text, 'bad hex digits');
  return `"${bytes.toString('base64')}"`;
}

/** Index after an ISO date `Y…Y-MM-DD` (4+ year digits) starting at 0, or -1. */
function scanIsoDate(s: string): number {
  const y = skipDigits(s, 0);
  if (y < 4 || s.charCodeAt(y) !== C_MINUS) return -1;
  if (!isDigit(s.charCodeAt(y + 1)) || !isDigit(s.charCodeAt(y + 2)) || s.charCodeAt(y + 3) !== C_MINUS) return -1;
  if (!isDigit(s.charCodeAt(y + 4)) || !isDigit(s.charCodeAt(y + 5))) return -1;
  return y + 6;
}

/** Index after `HH:MM:SS[.f…]` starting at `i`, or -1. */
function scanClock(s: string, i: number): number {
  if (!isDigit(s.charCodeAt(i)) || !isDigit(s.charCodeAt(i + 1)) || s.charCodeAt(i + 2) !== C_COLON) return -1;
  if (!isDigit(s.charCodeAt(i + 3)) || !isDigit(s.charCodeAt(i + 4)) || s.charCodeAt(i + 5) !== C_COLON) return -1;
  if (!isDigit(s.charCodeAt(i + 6)) || !isDigit(s.charCodeAt(i + 7))) return -1;
  i += 8;
  if (s.charCodeAt(i) === C_DOT) {
    const end = skipDigits(s, i + 1);
    if (end === i + 1) return -1;
    i = end;
  }
  return i;
}

/** True when the text ends in ` BC` (dates and timestamps before year 1). */
function isBc(s: string): boolean {
  const n = s.length;
  return n > 3 && s.charCodeAt(n - 1) === 67 /* C */ && s.charCodeAt(n - 2) === 66 /* B */ && s.charCodeAt(n - 3) === C_SPACE;
}

/**
 * `0044-03-15` of a BC value → ISO 8601 astronomical year numbering: 1 BC is year 0000,
 * 44 BC is -0043. `yearEnd` is the index of the '-' after the year.
 */
export function astronomicalYear(s: string, yearEnd: number): string {
  const year = 1 - Number(s.slice(0, yearEnd));
  const abs = String(Math.abs(year)).padStart(4, '0');
  return year < 0 ? `-${abs}` : abs;
}

function isInfinity(text: string): boolean {
  return text === 'infinity' || text === '-infinity';
}

/** `2024-02-29` as printed; BC dates in astronomical year numbering; ±infinity kept. */
function dateToJson(text: string, type: TypeInfo): string {
  const bc = isBc(text);
  const end = bc ? text.length - 3 : text.length;
  const dateEnd = scanIsoDate(text);
  if (dateEnd !== end) {
    if (isInfinity(text)) return `"${text}"`;
    throw malformed(type, text, 'not an ISO date (is DateStyle=ISO pinned?)');
  }
  if (!bc) return `"${text}"`;
  const yearEnd = dateEnd - 6;
  return `"${astronomicalYear(text, yearEnd)}${text.slice(yearEnd, dateEnd)}"`;
}

/**
 * `2024-02-29 13:45:00.123456` → `2024-02-29T13:45:00.123456`; with a zone, the pinned UTC
 * session prints `+00`, which becomes `Z`. The fraction is kept exactly as printed.
 */
function timestampToJson(text: string, type: TypeInfo, withZone: boolean): string {
  const dateEnd = scanIsoDate(text);
  if (dateEnd < 0 || text.charCodeAt(dateEnd) !== C_SPACE) {
    if (isInfinity(text)) return `"${text}"`;
    throw malformed(type, text, 'not an ISO timestamp (is DateStyle=ISO pinned?)');
  }
  const clockEnd = scanClock(text, dateEnd + 1);
  if (clockEnd < 0) throw malformed(type, text, 'bad time of day');
  let end = clockEnd;
  if (withZone) {
    if (text.charCodeAt(end) !== C_PLUS || text.charCodeAt(end + 1) !== C_0 || text.charCodeAt(end + 2) !== C_0) {
      throw malformed(type, text, 'offset is not +00 (is TimeZone=UTC pinned?)');
    }
    end += 3;
  }
  const bc = isBc(text);
  if (end !== (bc ? text.length - 3 : text.length)) throw malformed(type, text, 'unexpected trailing text');
  const yearEnd = dateEnd - 6;
  const year = bc ? astronomicalYear(text, yearEnd) : text.slice(0, yearEnd);
  return `"${year}${text.slice(yearEnd, dateEnd)}T${text.slice(dateEnd + 1, clockEnd)}${withZone ? 'Z' : ''}"`;
}

/** IntervalStyle=iso_8601 prints `P1Y2M3DT4H5M6.7S` (fields may be negative), `PT0S`. */
function intervalToJson(text: string, type: TypeInfo): string {
  if (text.charCodeAt(0) !== 80 /* P */ || text.length < 3) {
    if (isInfinity(text)) return `"${text}"`; // Postgres 17+
    throw malformed(type, text, 'not an ISO 8601 duration (is IntervalStyle=iso_8601 pinned?)');
  }
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isDigit(c) || c === C_MINUS || c === C_DOT) continue;
    // Y M W D T H S
    if (c === 89 || c === 77 || c === 87 || c === 68 || c === 84 || c === 72 || c === 83) continue;
    throw malformed(type, text, 'not an ISO 8601 duration (is IntervalStyle=iso_8601 pinned?)');
  }
  return `"${text}"`;
}

/** time `13:45:00.5`, timetz `13:45:00+05:30` or `…-09:30:15`; printed as is. */
function isTimeText(text: string): boolean {
  let i = scanClock(text, 0);
  if (i < 0) return false;
  const sign = text.charCodeAt(i);
  if (sign === C_PLUS || sign === C_MINUS) {
    i++;
    const start = i;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (!isDigit(c) && c !== C_COLON) return false;
    }
    return i > start;
  }
  return i === text.length;
}
