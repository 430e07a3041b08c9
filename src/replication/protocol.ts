/**
 * The streaming-replication sub-protocol carried inside CopyData once START_REPLICATION has
 * switched the connection to CopyBoth mode. Pure: bytes in, values out.
 *
 *   'w' XLogData:          walStart u64, walEnd u64, sendTime i64, payload (one pgoutput message)
 *   'k' Primary keepalive: walEnd u64, sendTime i64, replyRequested u8
 *   'r' Standby status:    write u64, flush u64, apply u64, clientTime i64, replyRequested u8
 */
import type { Lsn } from '../lsn.ts';
import { pgTimeToUnixMs, unixMsToPgTime } from '../decoder/time.ts';

export interface XLogData {
  type: 'xlogdata';
  walStart: Lsn;
  walEnd: Lsn;
  /** A view into the copy-data chunk: valid only during the callback (the buffer is reused). */
  payload: Uint8Array;
}

export interface PrimaryKeepalive {
  type: 'keepalive';
  walEnd: Lsn;
  replyRequested: boolean;
}

export class ReplicationProtocolError extends Error {
  override name = 'ReplicationProtocolError';
}

export function parseCopyData(chunk: Uint8Array): XLogData | PrimaryKeepalive {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const tag = chunk[0];
  if (tag === 0x77 /* w */) {
    if (chunk.byteLength < 25) throw new ReplicationProtocolError(`XLogData too short: ${chunk.byteLength} bytes`);
    return {
      type: 'xlogdata',
      walStart: view.getBigUint64(1),
      walEnd: view.getBigUint64(9),
      payload: chunk.subarray(25),
    };
  }
  if (tag === 0x6b /* k */) {
    if (chunk.byteLength < 18) throw new ReplicationProtocolError(`keepalive too short: ${chunk.byteLength} bytes`);
    return { type: 'keepalive', walEnd: view.getBigUint64(1), replyRequested: chunk[17] === 1 };
  }
  throw new ReplicationProtocolError(
    `unknown replication message 0x${(tag ?? 0).toString(16).padStart(2, '0')}` +
      (tag !== undefined && tag >= 0x20 && tag < 0x7f ? ` ('${String.fromCharCode(tag)}')` : ''),
  );
}

export function standbyStatusUpdate(write: Lsn, flush: Lsn, apply: Lsn, nowMs: number, replyRequested = false): Buffer {
  const buf = Buffer.alloc(34);
  buf[0] = 0x72; // r
  buf.writeBigUInt64BE(write, 1);
  buf.writeBigUInt64BE(flush, 9);
  buf.writeBigUInt64BE(apply, 17);
  buf.writeBigInt64BE(unixMsToPgTime(nowMs), 25);
  buf[33] = replyRequested ? 1 : 0;
  return buf;
}

/** Postgres timestamps (µs since 2000-01-01) to Unix milliseconds. */
export { pgTimeToUnixMs as pgMicrosToUnixMs };

/** pgoutput protocol version for a server: 1 (PG 10–13), 2 (14), 3 (15), 4 (16+). */
export function protocolVersionFor(serverVersionNum: number): number {
  if (serverVersionNum >= 160000) return 4;
  if (serverVersionNum >= 150000) return 3;
  if (serverVersionNum >= 140000) return 2;
  return 1;
}
