/**
 * Postgres array literals (array_out's text) → JSON arrays. Elements are converted by the
 * element type, so int8 elements keep their digits, json elements are spliced and bytea
 * elements become base64, exactly as scalars.
 *
 * The grammar is array_in's: optional dimension decoration `[lo:hi][lo:hi]=` (array_out
 * prints it only when some lower bound is not 1), nested braces per dimension, elements
 * separated by the element type's delimiter (`,`, or `;` for box), double-quoted elements
 * with backslash escapes, unquoted NULL (any case) meaning SQL NULL while a quoted "NULL"
 * is the string. Anything else — unbalanced braces, ragged dimensions, stray quotes — is an
 * error rather than a guess.
 *
 * Lower bounds other than 1 are kept as `{"lower_bounds":[…],"values":[…]}` (docs/values.md).
 */
import { malformed } from './errors.ts';
import type { TypeInfo } from './types.ts';

/** Converts one element's text; textToJson, passed in to keep the modules acyclic. */
export type ElementConverter = (text: string, type: TypeInfo) => string;

const LBRACE = 123;
const RBRACE = 125;
const QUOTE = 34;
const BACKSLASH = 92;
const LBRACKET = 91;
const RBRACKET = 93;
const COLON = 58;
const EQUALS = 61;
const MINUS = 45;

/** array_in's scanner_isspace. */
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12;
}

export function arrayToJson(text: string, type: TypeInfo, convert: ElementConverter): string {
  const element = type.element;
  if (element === undefined) throw malformed(type, text, 'array type has no element type');
  return new ArrayParser(text, type, element, convert).parse();
}

class ArrayParser {
  private i = 0;
  private readonly delimiter: number;
  /** Number of dimensions, known once the first element is reached. */
  private ndims = -1;
  /** Length of each dimension, from the first sub-array seen at that depth. */
  private readonly lengths: number[] = [];
  private elementIndex = 0;

  constructor(
    private readonly text: string,
    private readonly type: TypeInfo,
    private readonly element: TypeInfo,
    private readonly convert: ElementConverter,
  ) {
    this.delimiter = (type.delimiter ?? ',').charCodeAt(0);
  }

  parse(): string {
    const { text } = this;
    let lowerBounds: number[] | undefined;
    let declaredLengths: number[] | undefined;
    if (text.charCodeAt(0) === LBRACKET) {
      lowerBounds = [];
      declaredLengths = [];
      this.dimensions(lowerBounds, declaredLengths);
    }
    this.skipSpace();
    if (text.charCodeAt(this.i) !== LBRACE) throw this.error("expected '{'");
    const values = this.level(0);
    this.skipSpace();
    if (this.i !== text.length) throw this.error('unexpected text after the closing brace');
    if (lowerBounds === undefined) return values;
    const ndims = this.ndims < 0 ? 0 : this.ndims;
    if (lowerBounds.length !== ndims) {
      throw this.error(`dimension decoration gives ${lowerBounds.length} dimensions, the value has ${ndims}`);
    }
    for (let d = 0; d < ndims; d++) {
      if (declaredLengths![d] !== this.lengths[d]) throw this.error(`dimension ${d + 1} does not match its bounds`);
    }
    if (lowerBounds.every((b) => b === 1)) return values;
    return `{"lower_bounds":[${lowerBounds.join(',')}],"values":${values}}`;
  }

  /** `[lo:hi]…=`: records each dimension's lower bound and length. */
  private dimensions(lower: number[], lengths: number[]): void {
    const { text } = this;
    while (text.charCodeAt(this.i) === LBRACKET) {
      this.i++;
      const lo = this.integer();
      if (text.charCodeAt(this.i) !== COLON) throw this.error("expected ':' in dimension bounds");
      this.i++;
      const hi = this.integer();
      if (text.charCodeAt(this.i) !== RBRACKET) throw this.error("expected ']' in dimension bounds");
      this.i++;
      if (hi < lo) throw this.error('upper bound below lower bound');
      lower.push(lo);
      lengths.push(hi - lo + 1);
    }
    if (text.charCodeAt(this.i) !== EQUALS) throw this.error("expected '=' after dimension bounds");
    this.i++;
  }

  private integer(): number {
    const { text } = this;
    const start = this.i;
    if (text.charCodeAt(this.i) === MINUS) this.i++;
    const digitsStart = this.i;
    while (this.i < text.length) {
      const c = text.charCodeAt(this.i);
      if (c < 48 || c > 57) break;
      this.i++;
    }
    if (this.i === digitsStart) throw this.error('expected an integer in dimension bounds');
    return Number(text.slice(start, this.i));
  }

  /** One `{…}` at nesting depth `depth` (0 = outermost); the cursor is on its '{'. */
  private level(depth: number): string {
    const { text } = this;
    if (this.ndims >= 0 && depth >= this.ndims) throw this.error('sub-array where an element was expected');
    this.i++;
    this.skipSpace();
    if (text.charCodeAt(this.i) === RBRACE) {
      // Only a whole array can be empty; `{{},{}}` is not a Postgres array.
      if (depth > 0) throw this.error('empty sub-array');
      this.i++;
      this.ndims = 0;
      return '[]';
    }
    let out = '[';
    let count = 0;
    for (;;) {
      this.skipSpace();
      if (text.charCodeAt(this.i) === LBRACE) {
        out += this.level(depth + 1);
      } else {
        if (this.ndims < 0) this.ndims = depth + 1;
        else if (this.ndims !== depth + 1) throw this.error('element where a sub-array was expected');
        out += this.elementJson();
      }
      count++;
      this.skipSpace();
      const c = text.charCodeAt(this.i);
      if (c === this.delimiter) {
        this.i++;
        out += ',';
        continue;
      }
      if (c === RBRACE) {
        this.i++;
        break;
      }
      if (this.i >= text.length) throw this.error('unterminated array');
      throw this.error(`expected '${String.fromCharCode(this.delimiter)}' or '}'`);
    }
    const known = this.lengths[depth];
    if (known === undefined) this.lengths[depth] = count;
    else if (known !== count) throw this.error('sub-arrays of different lengths');
    return out + ']';
  }

  /** One element, quoted or not, converted to JSON; the cursor is on its first character. */
  private elementJson(): string {
    const { text } = this;
    const index = this.elementIndex++;
    let value: string;
    if (text.charCodeAt(this.i) === QUOTE) {
      value = this.quoted();
    } else {
      const start = this.i;
      let segment = start;
      let buf = '';
      let escaped = false;
      let end = start; // end of the element without trailing blanks
      while (this.i < text.length) {
        const c = text.charCodeAt(this.i);
        if (c === this.delimiter || c === RBRACE) break;
        if (c === QUOTE || c === LBRACE) throw this.error(`unexpected '${String.fromCharCode(c)}' in an unquoted element`);
        if (c === BACKSLASH) {
          if (this.i + 1 >= text.length) throw this.error('backslash at end of text');
          buf += text.slice(segment, this.i) + text[this.i + 1];
          this.i += 2;
          segment = end = this.i;
          escaped = true;
          continue;
        }
        this.i++;
        if (!isSpace(c)) end = this.i;
      }
      if (end === start) throw this.error('empty unquoted element');
      value = escaped ? buf + text.slice(segment, Math.max(segment, end)) : text.slice(start, end);
      if (!escaped && value.length === 4 && value.toUpperCase() === 'NULL') return 'null';
    }
    try {
      return this.convert(value, this.element);
    } catch (err) {
      throw this.error(`element ${index + 1}: ${(err as Error).message}`, err);
    }
  }

  /** A double-quoted element with backslash escapes; the cursor is on the opening quote. */
  private quoted(): string {
    const { text } = this;
    this.i++;
    let segment = this.i;
    let buf = '';
    while (this.i < text.length) {
      const c = text.charCodeAt(this.i);
      if (c === QUOTE) {
        const value = buf + text.slice(segment, this.i);
        this.i++;
        return value;
      }
      if (c === BACKSLASH) {
        if (this.i + 1 >= text.length) break;
        buf += text.slice(segment, this.i) + text[this.i + 1];
        this.i += 2;
        segment = this.i;
        continue;
      }
      this.i++;
    }
    throw this.error('unterminated quoted element');
  }

  private skipSpace(): void {
    while (this.i < this.text.length && isSpace(this.text.charCodeAt(this.i))) this.i++;
  }

  private error(reason: string, cause?: unknown): Error {
    return malformed(this.type, this.text, `${reason} (at offset ${this.i})`, cause);
  }
}
