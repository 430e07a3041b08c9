/**
 * The CDC daemon: one replication session at a time, slot → decoder → events → JetStream,
 * confirming to Postgres only what JetStream has acknowledged. Any failure (Postgres gone,
 * NATS gone, a publish refused) ends the session; the next one reads back the stream's last
 * stored event and resumes behind it, so nothing is lost or repeated.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type pg from 'pg';
import type { Logger } from 'pino';
import { formatLsn, maxLsn, type Lsn } from '../lsn.ts';
import { createPgoutputDecoder } from '../decoder/pgoutput.ts';
import { createTransactionAssembler } from '../decoder/transactions.ts';
import type { Change, RelationChange } from '../decoder/types.ts';
import { createEventBuilder, type EventBuilder, type OutboundEvent } from '../events/envelope.ts';
import { comparePositions, type EventPosition } from '../events/position.ts';
import { defaultStreamName, streamSubjects } from '../events/subject.ts';
import { ensureStream } from '../publisher/stream.ts';
import { readStreamTail } from '../publisher/position.ts';
import { createPublisher, type Publisher } from '../publisher/publisher.ts';
import { openCatalogConnection, openReplicationConnection, identifySystem } from '../replication/connection.ts';
import { ensurePublication, ensureSlot, findCaptureProblems } from '../replication/setup.ts';
import { startReplication, type ReplicationStream } from '../replication/stream.ts';
import { protocolVersionFor, pgMicrosToUnixMs } from '../replication/protocol.ts';
import { createTypeRegistry } from './type-registry.ts';
import { createSchemaTracker } from './schema-tracker.ts';
import type { CdcMetrics } from './metrics.ts';

export interface CdcOptions {
  pgUrl: string;
  nc: NatsConnection;
  prefix: string;
  slot: string;
  publication: string;
  tables: Array<{ schema: string; table: string }>;
  createSlot: boolean;
  createPublication: boolean;
  streamName?: string;
  streamReplicas: number;
  duplicateWindowMs: number;
  streamMaxBytes: number;
  streamMaxAgeMs: number;
  publishWindow: number;
  ackTimeoutMs: number;
  statusIntervalMs: number;
  transactionMarkers: boolean;
  logger: Logger;
  metrics?: CdcMetrics;
  /** Runs between slot creation and START_REPLICATION when a new slot exported a snapshot. */
  onNewSlot?: (ctx: NewSlotContext) => Promise<void>;
}

export interface NewSlotContext {
  snapshotName: string;
  consistentPoint: Lsn;
  database: string;
  builder: EventBuilder;
  publisher: Publisher;
  prepareRelation: (oid: number) => Promise<void>;
}

export type DaemonState = 'starting' | 'streaming' | 'reconnecting' | 'stopping' | 'stopped';

export interface DaemonStatus {
  state: DaemonState;
  database?: string;
  stream?: string;
  receivedLsn: string;
  confirmedLsn: string;
  lastPublished?: { commitLsn: string; seq: number };
  sessions: number;
  lastError?: string;
}

export interface CdcDaemon {
  /** Resolves once stop() has drained and closed everything. */
  readonly done: Promise<void>;
  status(): DaemonStatus;
  ready(): boolean;
  stop(): Promise<void>;
}

/** Pause reading the replication socket above this many decoded-but-unsent changes. */
const QUEUE_HIGH = 2048;
const QUEUE_LOW = 256;

type Item = { change: Change } | { keepalive: Lsn; safe: boolean };

export function createCdcDaemon(opts: CdcOptions): CdcDaemon {
  const log = opts.logger;
  let state: DaemonState = 'starting';
  let stopping = false;
  let sessions = 0;
  let lastError: string | undefined;
  let received: Lsn = 0n;
  let confirmed: Lsn = 0n;
  let lastPublished: { commitLsn: Lsn; seq: number } | undefined;
  let database: string | undefined;
  let streamName: string | undefined;
  let wakeBackoff: (() => void) | undefined;
  let currentStop: (() => Promise<void>) | undefined;

  const done = (async () => {
    let backoff = 500;
    while (!stopping) {
      const started = Date.now();
      try {
        await runSession();
      } catch (err) {
        if (stopping) break;
        lastError = (err as Error).message;
        state = 'reconnecting';
        opts.metrics?.reconnects.inc();
        log.error({ err }, `replication session failed; retrying in ${backoff} ms`);
        // A session that streamed for a while was healthy: start the backoff over.
        if (Date.now() - started > 30_000) backoff = 500;
        await new Promise<void>((r) => {
          const t = setTimeout(r, backoff);
          wakeBackoff = () => {
            clearTimeout(t);
            r();
          };
        });
        wakeBackoff = undefined;
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
    state = 'stopped';
  })();

  async function runSession(): Promise<void> {
    sessions++;
    state = sessions === 1 ? 'starting' : 'reconnecting';
    const cleanups: Array<() => Promise<unknown> | unknown> = [];
    const cleanup = async () => {
      for (const fn of cleanups.reverse()) {
        try {
          await fn();
        } catch {
          // best effort: the session is over either way
        }
      }
    };
    try {
      const db = await openCatalogConnection(opts.pgUrl);
      cleanups.push(() => db.end());
      const dbName = (await db.query<{ db: string; enc: string }>('SELECT current_database() AS db, pg_encoding_to_char(encoding) AS enc FROM pg_database WHERE datname = current_database()')).rows[0];
      if (dbName.enc !== 'UTF8') {
        throw new Error(`database ${JSON.stringify(dbName.db)} uses encoding ${dbName.enc}; walnats needs UTF8 so that values reach JSON unchanged`);
      }
      database = dbName.db;
      const pubSpec = { name: opts.publication, tables: opts.tables, create: opts.createPublication };
      const pubResult = await ensurePublication(db, pubSpec);
      if (pubResult.created) log.info({ publication: opts.publication }, 'created publication');
      if (pubResult.altered) log.info({ publication: opts.publication, tables: opts.tables }, 'updated publication tables');
      for (const p of await findCaptureProblems(db, pubSpec)) {
        log.warn({ schema: p.schema, table: p.table, problem: p.problem }, `table ${p.schema}.${p.table} cannot be fully captured: ${p.detail}`);
      }

      const repl = await openReplicationConnection(opts.pgUrl);
      cleanups.push(() => repl.end());
      const identity = await identifySystem(repl);

      const jsm = await jetstreamManager(opts.nc);
      const name = opts.streamName ?? defaultStreamName(opts.prefix, database);
      streamName = name;
      await ensureStream(jsm, {
        name,
        subjects: streamSubjects(opts.prefix, database),
        replicas: opts.streamReplicas,
        duplicateWindowMs: opts.duplicateWindowMs,
        maxBytes: opts.streamMaxBytes,
        maxAgeMs: opts.streamMaxAgeMs,
      });

      const types = createTypeRegistry(() => db);
      const builder = createEventBuilder({
        prefix: opts.prefix,
        database,
        convert: types.convert,
        transactionMarkers: opts.transactionMarkers,
      });
      const { last, lastSeq } = await readStreamTail(jsm, name);
      const publisher = createPublisher(opts.nc, {
        stream: name,
        window: opts.publishWindow,
        ackTimeoutMs: opts.ackTimeoutMs,
        expectedLastSeq: lastSeq,
      });
      cleanups.push(() => publisher.close());

      const slot = await ensureSlot(db, repl, { name: opts.slot, create: opts.createSlot, exportSnapshot: !!opts.onNewSlot }, database);
      if (slot.created) log.info({ slot: opts.slot, consistentPoint: formatLsn(slot.consistentPoint!) }, 'created replication slot');
      confirmed = slot.confirmedFlushLsn ?? slot.consistentPoint ?? 0n;
      received = maxLsn(received, confirmed);
      const relations = createTransactionAssembler();

      if (slot.created && slot.snapshotName && opts.onNewSlot) {
        await opts.onNewSlot({
          snapshotName: slot.snapshotName,
          consistentPoint: slot.consistentPoint!,
          database,
          builder,
          publisher,
          prepareRelation: async () => {},
        });
      }

      let resumeAfter: EventPosition | null = last;
      if (last) {
        log.info({ commitLsn: formatLsn(last.commitLsn), seq: last.seq, kind: last.kind }, 'resuming after the last event stored in the stream');
        lastPublished = { commitLsn: last.commitLsn, seq: last.seq };
      }
      const schemas = createSchemaTracker(jsm, name, opts.prefix, database);

      await streamChanges({
        repl,
        protocolVersion: protocolVersionFor(identity.serverVersionNum),
        messages: identity.serverVersionNum >= 140000,
        walSenderTimeoutMs: identity.walSenderTimeoutMs,
        assembler: relations,
        builder,
        publisher,
        resumeAfter,
        prepareRelation: (c) => types.prepare(c.relation),
        schemaEvent: async (c) => ((await schemas.shouldPublish(c)) ? builder.buildSchemaEvent(c) : null),
      });
    } finally {
      await cleanup();
    }
  }

  interface StreamContext {
    repl: pg.Client;
    protocolVersion: number;
    messages: boolean;
    walSenderTimeoutMs: number;
    assembler: ReturnType<typeof createTransactionAssembler>;
    builder: EventBuilder;
    publisher: Publisher;
    resumeAfter: EventPosition | null;
    prepareRelation: (c: RelationChange) => Promise<void>;
    schemaEvent: (c: RelationChange) => Promise<OutboundEvent | null>;
  }

  async function streamChanges(ctx: StreamContext): Promise<void> {
    const { publisher, builder, assembler } = ctx;
    const decoder = createPgoutputDecoder({ protocolVersion: ctx.protocolVersion });
    const queue: Item[] = [];
    let head = 0;
    let inTxn = false;
    let pumping = false;
    let failure: Error | undefined;
    let resumeAfter = ctx.resumeAfter;
    let failSession!: (err: Error) => void;
    const sessionFailed = new Promise<never>((_, reject) => (failSession = reject));
    sessionFailed.catch(() => {});

    const stream: ReplicationStream = startReplication(
      ctx.repl,
      { slot: opts.slot, publication: opts.publication, protocolVersion: ctx.protocolVersion, messages: ctx.messages, startLsn: 0n },
      (msg) => {
        if (msg.type === 'keepalive') {
          received = maxLsn(received, msg.walEnd);
          queue.push({ keepalive: msg.walEnd, safe: !inTxn });
          if (msg.replyRequested) stream.sendStatus(received, confirmed, confirmed);
        } else {
          received = maxLsn(received, msg.walStart);
          // decode() copies what it keeps: the payload is node-postgres's reused buffer.
          const changes = assembler.push(msg.walStart, decoder.decode(msg.payload));
          for (const c of changes) {
            if (c.kind === 'begin') inTxn = true;
            else if (c.kind === 'commit') inTxn = false;
            queue.push({ change: c });
          }
        }
        if (queue.length - head > QUEUE_HIGH) stream.pause();
        if (!pumping) void pump();
      },
    );
    state = 'streaming';
    lastError = undefined;
    log.info({ slot: opts.slot, protocolVersion: ctx.protocolVersion, confirmed: formatLsn(confirmed) }, 'streaming changes');

    // Status updates on a timer, independent of the socket: they keep wal_sender_timeout at
    // bay even while reading is paused because JetStream is slow.
    const statusEvery = Math.max(100, Math.min(opts.statusIntervalMs, Math.floor(ctx.walSenderTimeoutMs / 4) || opts.statusIntervalMs));
    const timer = setInterval(() => {
      stream.sendStatus(received, confirmed, confirmed);
      opts.metrics?.confirmedLsn.set(Number(confirmed));
      opts.metrics?.inFlight.set(publisher.inFlight);
    }, statusEvery);

    const confirmUpTo = (lsn: Lsn) => () => {
      if (lsn > confirmed) confirmed = lsn;
    };

    async function pump(): Promise<void> {
      pumping = true;
      try {
        while (head < queue.length && !failure) {
          const item = queue[head++];
          if ('keepalive' in item) {
            // Between transactions everything up to the server's sent position has reached
            // us; once what we sent is acked, the slot may move there (idle databases too).
            if (item.safe) publisher.checkpoint(confirmUpTo(item.keepalive));
            continue;
          }
          const c = item.change;
          if (c.kind === 'commit') {
            publisher.checkpoint(confirmUpTo(c.endLsn));
            opts.metrics?.transactions.inc();
            if (!opts.transactionMarkers) continue;
          }
          let ev: OutboundEvent | null;
          if (c.kind === 'relation') {
            await ctx.prepareRelation(c);
            if (resumeAfter && comparePositions({ ...c, kind: 'schema' }, resumeAfter) <= 0) continue;
            ev = await ctx.schemaEvent(c);
          } else {
            if (resumeAfter) {
              const kind = c.kind === 'insert' || c.kind === 'update' || c.kind === 'delete' || c.kind === 'truncate' || c.kind === 'message' || c.kind === 'begin' || c.kind === 'commit' ? c.kind : 'insert';
              if (comparePositions({ commitLsn: c.commitLsn, seq: c.seq, kind }, resumeAfter) <= 0) continue;
              resumeAfter = null;
            }
            ev = builder.build(c);
          }
          if (!ev) continue;
          if (!publisher.send(ev)) await Promise.race([publisher.whenRoom(), sessionFailed]);
          lastPublished = { commitLsn: ev.commitLsn, seq: ev.seq };
          if (opts.metrics && c.kind !== 'relation' && c.kind !== 'begin' && c.kind !== 'commit') {
            opts.metrics.countEvent(c, pgMicrosToUnixMs(c.commitTimeUs));
          }
          if (stream.paused && queue.length - head < QUEUE_LOW) stream.resume();
        }
        // Compact the consumed part of the queue so it never grows without bound.
        if (head > 4096 || head === queue.length) {
          queue.splice(0, head);
          head = 0;
        }
        if (stream.paused && queue.length - head < QUEUE_LOW) stream.resume();
      } catch (err) {
        failure = err as Error;
        failSession(failure);
      } finally {
        pumping = false;
      }
    }

    let stopRequested!: () => void;
    const stopSignal = new Promise<void>((r) => (stopRequested = r));
    currentStop = async () => {
      stopRequested();
    };
    if (stopping) stopRequested();
    try {
      const outcome = await Promise.race([
        stream.ended.then((err) => err ?? new Error('replication stream ended')),
        publisher.failed.then((err) => new Error('publishing to JetStream failed', { cause: err })),
        sessionFailed,
        stopSignal.then(() => undefined),
      ]);
      if (outcome) throw outcome;
      // Graceful stop: stop reading, publish what was decoded, wait for acks, confirm, close.
      state = 'stopping';
      stream.pause();
      const drained = (async () => {
        while (pumping || head < queue.length) {
          if (!pumping) await pump();
          else await new Promise((r) => setTimeout(r, 5));
        }
        await new Promise<void>((r) => publisher.checkpoint(r));
      })();
      const timedOut = await Promise.race([
        drained.then(() => false),
        publisher.failed.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(true), Math.max(opts.ackTimeoutMs, 1000))),
      ]);
      if (timedOut) log.warn('stopping without every event acknowledged; they will be replayed and skipped on the next start');
      stream.sendStatus(received, confirmed, confirmed);
      log.info({ confirmed: formatLsn(confirmed) }, 'confirmed position sent; closing replication connection');
      await stream.stop();
    } finally {
      clearInterval(timer);
      currentStop = undefined;
      if (!stopping) {
        // The session failed: stop reading so nothing more is decoded into a dead publisher.
        await stream.stop().catch(() => {});
      }
    }
  }

  return {
    done,
    ready: () => state === 'streaming',
    status: () => ({
      state,
      database,
      stream: streamName,
      receivedLsn: formatLsn(received),
      confirmedLsn: formatLsn(confirmed),
      lastPublished: lastPublished && { commitLsn: formatLsn(lastPublished.commitLsn), seq: lastPublished.seq },
      sessions,
      lastError,
    }),
    async stop() {
      if (stopping) return done;
      stopping = true;
      state = 'stopping';
      wakeBackoff?.();
      await currentStop?.();
      await done;
    },
  };
}
