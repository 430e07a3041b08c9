/**
 * JSON parsing that loses no digits: integers beyond Number.MAX_SAFE_INTEGER come back as
 * strings with their exact digits (the CDC daemon writes int8 as JSON numbers). Everything
 * else is what JSON.parse would give.
 */
export function parseLosslessJson(text: string): unknown {
  // Fast path: no integer literal of 16+ digits, JSON.parse is exact.
  if (!/\d{16,}/.test(text)) return JSON.parse(text);
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
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (m) {
      i += m[0].length;
      if (!m[1] && !m[2]) {
        const n = Number(m[0]);
        return Number.isSafeInteger(n) ? n : m[0];
      }
      return Number(m[0]);
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
