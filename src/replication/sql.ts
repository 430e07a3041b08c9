/** Quoting for the SQL walnats writes itself: identifiers and literals, never interpolated raw. */

export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error(`identifier contains a NUL byte: ${JSON.stringify(name)}`);
  return '"' + name.replace(/"/g, '""') + '"';
}

export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error(`literal contains a NUL byte`);
  return "'" + value.replace(/'/g, "''") + "'";
}

/** `schema.table` or `table` (schema public), with double quotes honoured: `"my.schema"."a b"`. */
export function parseQualifiedName(text: string): { schema: string; table: string } {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    if (text[i] === '"') {
      let j = i + 1;
      let out = '';
      for (;;) {
        if (j >= text.length) throw new Error(`unterminated quoted identifier in ${JSON.stringify(text)}`);
        if (text[j] === '"') {
          if (text[j + 1] === '"') {
            out += '"';
            j += 2;
            continue;
          }
          break;
        }
        out += text[j++];
      }
      parts.push(out);
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && text[j] !== '.') j++;
      const raw = text.slice(i, j);
      if (raw === '') throw new Error(`empty name part in ${JSON.stringify(text)}`);
      // Unquoted names fold to lower case, as in SQL.
      parts.push(raw.toLowerCase());
      i = j;
    }
    if (i === text.length) break;
    if (text[i] !== '.') throw new Error(`unexpected ${JSON.stringify(text[i])} in ${JSON.stringify(text)}`);
    i++;
  }
  if (parts.length === 1) return { schema: 'public', table: parts[0] };
  if (parts.length === 2) return { schema: parts[0], table: parts[1] };
  throw new Error(`expected table or schema.table, got ${JSON.stringify(text)}`);
}
