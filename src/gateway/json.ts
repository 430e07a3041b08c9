/**
 * A JSON number kept as its exact token (jsonb's `12345678901234567890`, `1.50`, `1e400` printed
 * as 401 digits): what a JS number cannot hold. stringifyLossless writes the token as it is;
 * plain JSON.stringify (toJSON) falls back to the nearest double.
 */
export class JsonNumber {
  constructor(readonly text: string) {}
  toJSON(): number {
    return Number(this.text);
  }
  toString(): string {
    return this.text;
  }
}

/** A number token as a JS number when it prints back unchanged, else as a JsonNumber. */
export function exactNumber(token: string): number | JsonNumber {
  const n = Number(token);
  return String(n) === token ? n : new JsonNumber(token);
}

/**
 * Text that may hold a number JSON.parse would not give back as written: 16+ digits (integers
 * beyond 2^53, long decimals), 17+ characters of digits and a point, exponents, trailing zeros
 * of a fraction, small fractions (printed with an exponent by JS), negative zero. Strings that
 * match only cost the slow path.
 */
const INEXACT = /\d{16,}|[\d.]{17,}|\d[eE]|\.\d*0(?!\d)|0\.0{5,}|-0(?![\d.])/;

/** Whether parseLosslessJson(text, true) may give JsonNumbers (then serialize with stringifyLossless). */
export function mayHoldInexactNumbers(text: string): boolean {
  return INEXACT.test(text);
}

/** Random per process: a string can only look like a spliced number by guessing it. */
const MARK = `\u0000walnats-number-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}:`;
const MARKED = new RegExp(`"${JSON.stringify(MARK).slice(1, -1).replace(/\\/g, '\\\\')}([^"]*)"`, 'g');

/**
 * JSON.stringify that writes JsonNumbers as their exact tokens (toJSON objects, GraphQLErrors
 * included, serialize as JSON.stringify would). Without JsonNumbers in the value it is
 * JSON.stringify.
 */
export function stringifyLossless(value: unknown): string {
  let marked = false;
  const out = JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const orig = this[key];
    if (orig instanceof JsonNumber) {
      marked = true;
      return MARK + orig.text;
    }
    return v;
  });
  return marked ? out.replace(MARKED, '$1') : out;
}

/**
 * JSON parsing that loses no digits: integers beyond Number.MAX_SAFE_INTEGER come back as
 * strings with their exact digits (the CDC daemon writes int8 as JSON numbers). Everything
 * else is what JSON.parse would give.
 *
 * With `exact`, every number that a JS number would not print back as written (big integers,
 * long decimals, `1.50`, `1e400`) comes back as a JsonNumber instead (query results: jsonb
 * numbers are output as Postgres stores them); `seen.exact` is set when one was made.
 */
export function parseLosslessJson(text: string, exact = false, seen?: { exact: boolean }): unknown {
  // Fast path: no number JSON.parse could change, JSON.parse is exact.
  if (!(exact ? INEXACT : /\d{16,}/).test(text)) return JSON.parse(text);
  let i = 0;
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        if (text[i++] !== ':') throw new SyntaxError(`JSON: expected ':' at ${i - 1}`);
        o[k] = value();
        ws();
        const d = text[i++];
        if (d === '}') return o;
        if (d !== ',') throw new SyntaxError(`JSON: expected ',' or '}' at ${i - 1}`);
      }
    }
    if (c === '[') {
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value());
        ws();
        const d = text[i++];
        if (d === ']') return a;
        if (d !== ',') throw new SyntaxError(`JSON: expected ',' or ']' at ${i - 1}`);
      }
    }
    if (c === '"') return str();
    const end = numberEnd(text, i);
    if (end > i) {
      const token = text.slice(i, end);
      i = end;
      if (exact) {
        const x = exactNumber(token);
        if (seen && typeof x !== 'number') seen.exact = true;
        return x;
      }
      const n = Number(token);
      if (/^-?\d+$/.test(token)) return Number.isSafeInteger(n) ? n : token;
      return n;
    }
    for (const [lit, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    throw new SyntaxError(`JSON: unexpected character at ${i}`);
  };
  const str = (): string => {
    if (text[i] !== '"') throw new SyntaxError(`JSON: expected string at ${i}`);
    let j = i + 1;
    while (j < text.length) {
      const c = text[j];
      if (c === '\\') j += 2;
      else if (c === '"') break;
      else j++;
    }
    const s = JSON.parse(text.slice(i, j + 1)) as string;
    i = j + 1;
    return s;
  };
  const v = value();
  ws();
  if (i !== text.length) throw new SyntaxError(`JSON: unexpected data at ${i}`);
  return v;
}

/**
 * A value parsed with `exact` as parseLosslessJson(text) without it would give it: JsonNumbers
 * become numbers, integers beyond 2^53 strings of their digits. Copies only what holds a
 * JsonNumber; the rest is shared (unchanged identity means no JsonNumber inside).
 */
export function plainNumbers(v: unknown): unknown {
  if (v instanceof JsonNumber) {
    const n = Number(v.text);
    return /^-?\d+$/.test(v.text) && !Number.isSafeInteger(n) ? v.text : n;
  }
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = plainNumbers(v[i]);
      if (x !== v[i]) (out ??= v.slice())[i] = x;
    }
    return out ?? v;
  }
  if (v && typeof v === 'object') {
    let out: Record<string, unknown> | undefined;
    for (const k in v as Record<string, unknown>) {
      const y = (v as Record<string, unknown>)[k];
      const x = plainNumbers(y);
      if (x !== y) (out ??= { ...(v as Record<string, unknown>) })[k] = x;
    }
    return out ?? v;
  }
  return v;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

/** The index after a JSON number token starting at `i` (RFC 8259 §6, any length), or `i`. */
export function numberEnd(text: string, i: number): number {
  let j = i;
  if (text.charCodeAt(j) === 45) j++;
  if (text.charCodeAt(j) === 48) j++;
  else if (isDigit(text.charCodeAt(j))) while (isDigit(text.charCodeAt(j))) j++;
  else return i;
  if (text.charCodeAt(j) === 46 && isDigit(text.charCodeAt(j + 1))) {
    j += 2;
    while (isDigit(text.charCodeAt(j))) j++;
  }
  const e = text.charCodeAt(j);
  if (e === 101 || e === 69) {
    let k = j + 1;
    const sign = text.charCodeAt(k);
    if (sign === 43 || sign === 45) k++;
    if (isDigit(text.charCodeAt(k))) {
      while (isDigit(text.charCodeAt(k))) k++;
      j = k;
    }
  }
  return j;
}

/**
 * Postgres's JSON text (`{"a" : 1, "b" : [{…}, \n {…}]}`) without the whitespace between tokens,
 * i.e. as JSON.stringify writes the same value. Strings are copied as they are: Postgres escapes
 * exactly what JSON.stringify escapes (`"`, `\`, control characters; `\u00xx` in lower case).
 * Returns undefined when a number has 10 or more digits: JSON.parse/graphql-js might not give
 * those back unchanged (integers beyond 2^53, Int's 32-bit range), so the caller takes the slow path.
 */
export function compactJsonText(text: string): string | undefined {
  let out = '';
  let from = 0; // start of the pending run to copy
  let digits = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // a string: skip to its closing quote
      digits = 0;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
    } else if (c === 32 || c === 10 || c === 9 || c === 13) {
      digits = 0;
      if (i > from) out += text.slice(from, i);
      from = i + 1;
    } else if (c >= 48 && c <= 57) {
      if (++digits >= 10) return undefined;
    } else digits = 0;
  }
  return from === 0 ? text : out + text.slice(from);
}
