import type { TypeInfo } from './types.ts';

/**
 * The error for text a converter does not recognise. It names the type and shows the start
 * of the text (values may be large, and the message ends up in logs).
 */
export function malformed(type: TypeInfo, text: string, reason: string, cause?: unknown): Error {
  const shown = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return new Error(
    `cannot convert ${type.name} (oid ${type.oid}) value ${JSON.stringify(shown)} to JSON: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}
