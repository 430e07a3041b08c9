/**
 * The output settings every walnats session (replication and snapshot) pins, so that the
 * text Postgres prints — and therefore the JSON walnats publishes — never depends on
 * server, database or role defaults. They are passed in the startup packet
 * (`options=-c name=value …`), which takes precedence over ALTER DATABASE/ROLE … SET and
 * postgresql.conf, and applies to walsender connections from their first message on.
 * `test/integration/values-session.test.ts`
 * checks each one is accepted and takes effect against differing database defaults.
 */

export const PINNED_OUTPUT_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  // ISO output (`2024-02-29 13:45:00`); the field order only affects how ambiguous input
  // is read, pinned anyway so the setting is fully determined.
  DateStyle: 'ISO, YMD',
  // timestamptz is printed in the session time zone; UTC makes it `…+00`, which becomes `Z`.
  TimeZone: 'UTC',
  // `P1M`, `P30D`, `PT720H`: months, days and time kept apart, in ISO 8601 form.
  IntervalStyle: 'iso_8601',
  // Any value > 0 gives the shortest text that round-trips (Postgres 12+).
  extra_float_digits: '1',
  // `\x0a0b`, which is decoded to base64.
  bytea_output: 'hex',
  // money prints as `$1,234.50` / `-$1.50` with two fraction digits under the C locale.
  lc_monetary: 'C',
  // All text arrives as UTF-8, whatever the database encoding.
  client_encoding: 'UTF8',
});

/**
 * Escapes a value for the startup `options` string: Postgres splits it on whitespace and
 * lets a backslash protect the next character (pg_split_opts), as libpq documents.
 */
function escapeOption(value: string): string {
  let out = '';
  for (const ch of value) {
    if (ch === '\\' || ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v') out += '\\';
    out += ch;
  }
  return out;
}

/** `-c DateStyle=ISO,\ YMD -c TimeZone=UTC …`, for the `options` connection parameter. */
export function pinnedOptionsString(settings: Readonly<Record<string, string>> = PINNED_OUTPUT_SETTINGS): string {
  return Object.entries(settings)
    .map(([name, value]) => `-c ${escapeOption(name)}=${escapeOption(value)}`)
    .join(' ');
}
