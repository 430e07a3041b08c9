/**
 * Reading back where the stream stands: the last stored event and its position, so that the
 * daemon resumes after it (DESIGN §4).
 */
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { comparePositions, positionFromHeaders, type EventPosition } from '../events/position.ts';

export { comparePositions };
export type { EventPosition };

export interface LastPosition extends EventPosition {
  /** Stream sequence of the message the position was read from. */
  streamSeq: number;
}

export interface StreamTail {
  /** The stream's last sequence (0 for a stream never written to); the publisher's `expectedLastSeq`. */
  lastSeq: number;
  /** Position of the last stored message, or null when the stream holds no message. */
  last: LastPosition | null;
}

/** How many deleted sequences at the tail to step over before giving up. */
const MAX_TAIL_GAP = 1000;

export class ForeignMessageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ForeignMessageError';
  }
}

/** JetStream's "no message found" (API error 10037): a get that found nothing, not a failure. */
export function isNoMessageFound(err: unknown): boolean {
  let code: number | undefined;
  try {
    code = (err as { apiError?: () => { err_code?: number } }).apiError?.().err_code;
  } catch {
    /* not an API error */
  }
  return code === 10037 || /no message found/i.test((err as Error)?.message ?? '');
}

/** A stored message by sequence or subject; null when there is none (deleted, removed by limits). */
export async function getMessageOrNull(jsm: JetStreamManager, stream: string, query: Parameters<JetStreamManager['streams']['getMessage']>[1]): Promise<StoredMsg | null> {
  try {
    return await jsm.streams.getMessage(stream, query);
  } catch (err) {
    if (isNoMessageFound(err)) return null;
    throw err;
  }
}

async function getMessage(jsm: JetStreamManager, stream: string, seq: number): Promise<StoredMsg | null> {
  try {
    return await getMessageOrNull(jsm, stream, { seq });
  } catch (err) {
    throw new Error(`cannot read message ${seq} of stream ${stream}`, { cause: err });
  }
}

/** The stream's last sequence and the position of its last stored message. */
export async function readStreamTail(jsm: JetStreamManager, stream: string): Promise<StreamTail> {
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch (err) {
    throw new Error(`cannot read stream ${stream}`, { cause: err });
  }
  const { last_seq: lastSeq, first_seq: firstSeq, messages } = info.state;
  if (messages === 0 || lastSeq === 0) return { lastSeq, last: null };
  for (let seq = lastSeq; seq >= Math.max(firstSeq, 1) && lastSeq - seq <= MAX_TAIL_GAP; seq--) {
    const m = await getMessage(jsm, stream, seq);
    if (!m) continue; // deleted message at the tail
    let pos: EventPosition | null;
    try {
      pos = positionFromHeaders(m.header);
    } catch (cause) {
      throw new ForeignMessageError(`message ${seq} (${m.subject}) of stream ${stream} has malformed walnats position headers`, { cause });
    }
    if (!pos) {
      throw new ForeignMessageError(
        `message ${seq} (${m.subject}) of stream ${stream} has no walnats position headers: ` +
          `something other than walnats writes to this stream, so walnats cannot tell where to resume`,
      );
    }
    return { lastSeq, last: { ...pos, streamSeq: seq } };
  }
  throw new Error(`stream ${stream}: no readable message within ${MAX_TAIL_GAP} sequences of its last sequence ${lastSeq}`);
}

/** Position of the stream's last stored message; null when the stream is empty. */
export async function readLastPosition(jsm: JetStreamManager, stream: string): Promise<LastPosition | null> {
  return (await readStreamTail(jsm, stream)).last;
}
