/**
 * A logical replication session on a node-postgres replication connection: START_REPLICATION,
 * CopyData in (XLogData and keepalives, parsed but not decoded), standby status updates out,
 * and socket-level flow control. It owns the socket; it does not know what the data means.
 */
import type pg from 'pg';
import { formatLsn, type Lsn } from '../lsn.ts';
import { parseCopyData, standbyStatusUpdate, type PrimaryKeepalive, type XLogData } from './protocol.ts';
import { quoteIdent, quoteLiteral } from './sql.ts';

export interface StartReplicationOptions {
  slot: string;
  publication: string;
  protocolVersion: number;
  /** pgoutput `messages` option (logical messages); Postgres 14+. */
  messages: boolean;
  startLsn: Lsn;
}

export interface ReplicationStream {
  /** Resolves when the session ends: undefined after stop(), the error otherwise. */
  readonly ended: Promise<Error | undefined>;
  sendStatus(write: Lsn, flush: Lsn, apply: Lsn, replyRequested?: boolean): void;
  /** Stops reading the socket (the server's writes then block); status updates still go out. */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  /** Ends CopyBoth mode and closes the connection. */
  stop(): Promise<void>;
}

interface PgConnectionInternals {
  on(event: 'copyData', cb: (msg: { chunk: Buffer }) => void): void;
  removeAllListeners(event: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  stream: NodeJS.ReadableStream & { destroyed?: boolean };
}

export function startReplicationCommand(o: StartReplicationOptions): string {
  const options = [`proto_version ${quoteLiteral(String(o.protocolVersion))}`, `publication_names ${quoteLiteral(quoteIdent(o.publication))}`];
  if (o.messages) options.push(`messages 'true'`);
  return `START_REPLICATION SLOT ${quoteIdent(o.slot)} LOGICAL ${formatLsn(o.startLsn)} (${options.join(', ')})`;
}

/**
 * `onMessage` is called synchronously for every CopyData message, in order. An XLogData
 * payload is a view of node-postgres's read buffer, valid only during the call.
 */
export function startReplication(
  client: pg.Client,
  opts: StartReplicationOptions,
  onMessage: (msg: XLogData | PrimaryKeepalive) => void,
): ReplicationStream {
  const con = (client as unknown as { connection: PgConnectionInternals }).connection;
  let stopping = false;
  let paused = false;
  let settle!: (err: Error | undefined) => void;
  const ended = new Promise<Error | undefined>((resolve) => (settle = resolve));
  let done = false;
  const finish = (err: Error | undefined) => {
    if (done) return;
    done = true;
    con.removeAllListeners('copyData');
    settle(err);
  };

  con.on('copyData', (msg) => {
    if (done) return;
    try {
      onMessage(parseCopyData(msg.chunk));
    } catch (err) {
      finish(err as Error);
      client.end().catch(() => {});
    }
  });
  client.on('error', (err) => finish(new Error('replication connection failed', { cause: err })));
  client.on('end', () => finish(stopping ? undefined : new Error('replication connection closed by the server')));
  client.query(startReplicationCommand(opts)).then(
    () => finish(stopping ? undefined : new Error('replication stream ended by the server')),
    (err: Error) => finish(stopping ? undefined : new Error(`replication failed: ${err.message}`, { cause: err })),
  );

  return {
    ended,
    get paused() {
      return paused;
    },
    sendStatus(write, flush, apply, replyRequested = false) {
      if (done || con.stream.destroyed) return;
      con.sendCopyFromChunk(standbyStatusUpdate(write, flush, apply, Date.now(), replyRequested));
    },
    pause() {
      if (!paused) {
        paused = true;
        con.stream.pause();
      }
    },
    resume() {
      if (paused) {
        paused = false;
        con.stream.resume();
      }
    },
    async stop() {
      if (done) return;
      stopping = true;
      if (paused) con.stream.resume();
      try {
        con.endCopyFrom();
      } catch {
        // the socket may already be gone; ending the client below settles the stream
      }
      const timeout = setTimeout(() => client.end().catch(() => {}), 5000);
      await Promise.race([ended, client.end().catch(() => {})]);
      clearTimeout(timeout);
      finish(undefined);
    },
  };
}
