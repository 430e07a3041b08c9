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
import type { Change, Relation, RelationChange } from '../decoder/types.ts';
import { createEventBuilder, type EventBuilder, type OutboundEvent } from '../events/envelope.ts';
import { comparePositions, type EventPosition } from '../events/position.ts';
import { defaultStreamName, HEARTBEAT_PREFIX, streamSubjects } from '../events/subject.ts';
import { buildDeadLetterEvent } from '../events/dead-letter.ts';
import { ensureStream, StreamConflictError } from '../publisher/stream.ts';
import { readStreamTail } from '../publisher/position.ts';
import { createPublisher, type Publisher } from '../publisher/publisher.ts';
import { openCatalogConnection, openReplicationConnection, identifySystem } from '../replication/connection.ts';
import { LEADER_LOCK_ARGS, leaderLockHolder } from '../leader-lock.ts';
import { ensurePublication, ensureSlot, findCaptureProblems, SetupError } from '../replication/setup.ts';
import { startReplication, type ReplicationStream } from '../replication/stream.ts';
import { protocolVersionFor } from '../replication/protocol.ts';
import { pgTimeToUnixMs } from '../decoder/time.ts';
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
  /** What to do with a change that cannot become an event or be published (default stop). */
  poisonPolicy?: 'stop' | 'dead_letter';
  /** Heartbeat messages written into the WAL this often; 0/undefined = off. */
  heartbeatIntervalMs?: number;
  /** Create a new slot even though the stream holds events (the old slot was lost). */
  slotRecreate?: boolean;
  /** Shown to other instances (and in `walnats status`) as the holder of the leader lock. */
  instanceName?: string;
  /** Runs between slot creation and START_REPLICATION when a new slot exported a snapshot. */
  onNewSlot?: (ctx: NewSlotContext) => Promise<void>;
  /**
   * Runs once per session just before START_REPLICATION (after onNewSlot); the observer it
   * returns sees every change the session publishes (src/snapshot: backfill watermarks).
   */
  onSession?: (ctx: SessionContext) => Promise<ChangeObserver | undefined>;
}

export interface SessionContext {
  database: string;
  stream: string;
  jsm: JetStreamManager;
  builder: EventBuilder;
  publisher: Publisher;
  prepareRelation: (relation: Relation) => Promise<void>;
  /** True when this session created the slot. */
  slotCreated: boolean;
}

export interface ChangeObserver {
  /**
   * Called in publishing order for each change past the resume position, before its event
   * is built: `events` are published before the change's own event; `drop` skips the latter.
   */
  observe(change: Change): { events?: OutboundEvent[]; drop?: boolean } | undefined;
  /** The session ended. */
  close(): Promise<void>;
}

export interface NewSlotContext {
  snapshotName: string;
  consistentPoint: Lsn;
  database: string;
  builder: EventBuilder;
  publisher: Publisher;
  prepareRelation: (relation: Relation) => Promise<void>;
}

export type DaemonState = 'starting' | 'standby' | 'streaming' | 'reconnecting' | 'stopping' | 'stopped' | 'failed';

/**
 * An error that retrying cannot fix (a poison change under `poison_policy: stop`, a lost
 * slot): the daemon stops and reports it instead of looping.
 */
export class FatalCdcError extends Error {
  override name = 'FatalCdcError';
}

/**
 * Failures that retrying cannot fix: our own fatal errors, setup problems (a slot of another
 * database, a publication that does not match, create_* off and nothing there, a stream that
 * conflicts with the configuration) and missing
 * privileges. They stop the daemon with the reason instead of looping; a supervisor
 * (systemd, Kubernetes) restarts it once someone has fixed the cause.
 */
function isFatal(err: unknown): boolean {
  // A stream that conflicts with the configuration (overlapping subjects, other retention or
  // storage, sealed) stays so until someone changes it.
  if (err instanceof FatalCdcError || err instanceof SetupError || err instanceof StreamConflictError) return true;
  const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  return code === '42501'; // insufficient_privilege
}

const LEADER_POLL_MS = 1000;

/** Bytes an event takes against NATS max_payload: body plus the header block. */
function eventSize(ev: OutboundEvent): number {
  let h = 12; // "NATS/1.0\r\n" + final "\r\n"
  for (const [k, v] of ev.headers) h += k.length + v.length * 3 + 4;
  return ev.body.byteLength + h;
}

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
  /** `active` streams; `standby` waits for the leader lock; `none` otherwise. */
  role(): 'active' | 'standby' | 'none';
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
        if (isFatal(err)) {
          state = 'failed';
          log.fatal({ err }, `stopping: ${(err as Error).message}`);
          break;
        }
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
    if (state !== 'failed') state = 'stopped';
  })();

  const maxPayload = () => opts.nc.info?.max_payload ?? 1024 * 1024;

  /** A change that cannot become a normal event: park it, or stop naming where and why. */
  function poison(c: Change, reason: string, err: Error, size?: number): OutboundEvent {
    const where = 'relation' in c ? `${c.relation.schema}.${c.relation.name}` : c.kind;
    const what = `${c.kind} on ${where} at commit ${formatLsn(c.commitLsn)} seq ${c.seq} (lsn ${formatLsn(c.lsn)})`;
    if (opts.poisonPolicy === 'dead_letter') {
      log.error({ err, reason, commitLsn: formatLsn(c.commitLsn), seq: c.seq, table: where }, `dead-lettered ${what}: ${reason}`);
      return buildDeadLetterEvent(opts.prefix, database!, c, { reason, error: err.message, size });
    }
    throw new FatalCdcError(`cannot publish ${what}: ${reason}: ${err.message} (poison_policy=stop; set dead_letter to park such changes and go on)`, { cause: err });
  }

  /** Waits until this instance holds the slot's leader lock; the others stay standby. */
  async function acquireLeadership(db: pg.Client): Promise<void> {
    let announced = false;
    for (;;) {
      if (stopping) throw new Error('stopping');
      const r = await db.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LEADER_LOCK_ARGS}) AS ok`, [opts.slot]);
      if (r.rows[0].ok) {
        if (announced) log.info({ slot: opts.slot }, 'took over: this instance is now the active one');
        if (state === 'standby') state = 'starting';
        opts.metrics?.active?.set(1);
        return;
      }
      if (!announced) {
        const holder = await leaderLockHolder(db, opts.slot);
        log.info({ slot: opts.slot, holder: holder ?? undefined }, 'standby: another instance is active for this slot; waiting to take over');
        announced = true;
      }
      state = 'standby';
      opts.metrics?.active?.set(0);
      await new Promise((r) => setTimeout(r, LEADER_POLL_MS));
    }
  }

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
      const db = await openCatalogConnection(opts.pgUrl, opts.instanceName);
      cleanups.push(() => db.end());
      // The leader lock lives on this connection: if it drops, so does the lock, and the
      // session must end before a standby takes over.
      let lockLost!: (err: Error) => void;
      const lockGone = new Promise<never>((_, reject) => (lockLost = reject));
      lockGone.catch(() => {});
      db.on('error', (err) => lockLost(new Error('lost the catalog connection that holds the leader lock', { cause: err })));
      db.on('end', () => lockLost(new Error('the catalog connection that holds the leader lock closed')));
      await acquireLeadership(db);
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

      if (last && !opts.slotRecreate) {
        const exists = await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [opts.slot]);
        if (exists.rowCount === 0) {
          throw new FatalCdcError(
            `replication slot ${JSON.stringify(opts.slot)} does not exist, but stream ${name} already holds events up to ` +
              `${formatLsn(last.commitLsn)}: the slot was dropped, and changes since then may be lost. To recover, start with ` +
              `slot_recreate=true (--slot-recreate): a new slot and its snapshot (snapshot_mode initial) bring the stream back in line. See docs/operations.md`,
          );
        }
      }
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
          prepareRelation: (r) => types.prepare(r),
        });
      }
      const observer = await opts.onSession?.({
        database,
        stream: name,
        jsm,
        builder,
        publisher,
        prepareRelation: (r) => types.prepare(r),
        slotCreated: slot.created,
      });
      if (observer) cleanups.push(() => observer.close());

      let resumeAfter: EventPosition | null = last;
      if (last) {
        log.info({ commitLsn: formatLsn(last.commitLsn), seq: last.seq, kind: last.kind }, 'resuming after the last event stored in the stream');
        lastPublished = { commitLsn: last.commitLsn, seq: last.seq };
      }
      const schemas = createSchemaTracker(jsm, name, opts.prefix, database);

      await streamChanges({
        repl,
        db,
        lockGone,
        protocolVersion: protocolVersionFor(identity.serverVersionNum),
        messages: identity.serverVersionNum >= 140000,
        walSenderTimeoutMs: identity.walSenderTimeoutMs,
        assembler: relations,
        builder,
        publisher,
        resumeAfter,
        prepareRelation: (c) => types.prepare(c.relation),
        schemaEvent: async (c) => ((await schemas.shouldPublish(c)) ? builder.buildSchemaEvent(c) : null),
        observer,
      });
    } finally {
      await cleanup();
    }
  }

  interface StreamContext {
    repl: pg.Client;
    db: pg.Client;
    lockGone: Promise<never>;
    protocolVersion: number;
    messages: boolean;
    walSenderTimeoutMs: number;
    assembler: ReturnType<typeof createTransactionAssembler>;
    builder: EventBuilder;
    publisher: Publisher;
    resumeAfter: EventPosition | null;
    prepareRelation: (c: RelationChange) => Promise<void>;
    schemaEvent: (c: RelationChange) => Promise<OutboundEvent | null>;
    observer?: ChangeObserver;
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
          let changes: Change[];
          try {
            changes = assembler.push(msg.walStart, decoder.decode(msg.payload));
          } catch (err) {
            // Retrying would read the same bytes again; skipping them would lose a change.
            throw new FatalCdcError(
              `cannot decode the pgoutput message at ${formatLsn(msg.walStart)}: ${(err as Error).message} ` +
                `(a message walnats cannot read stops it whatever poison_policy says: what follows in its transaction could not be trusted)`,
              { cause: err },
            );
          }
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
    const heartbeat = opts.heartbeatIntervalMs
      ? setInterval(() => {
          ctx.db.query('SELECT pg_logical_emit_message(false, $1, now()::text)', [HEARTBEAT_PREFIX]).catch((err: Error) => {
            log.warn({ err }, 'heartbeat failed');
          });
        }, opts.heartbeatIntervalMs)
      : undefined;
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
            const sentAt = performance.now();
            const confirm = confirmUpTo(c.endLsn);
            // Publish latency per transaction: its last event sent → acknowledged.
            publisher.checkpoint(() => {
              confirm();
              opts.metrics?.publishLatency?.observe((performance.now() - sentAt) / 1000);
            });
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
              // Every change kind but 'relation' (handled above) is an event kind of its own.
              if (comparePositions(c, resumeAfter) <= 0) continue;
              resumeAfter = null;
            }
            const seen = ctx.observer?.observe(c);
            for (const extra of seen?.events ?? []) {
              if (!publisher.send(extra)) await Promise.race([publisher.whenRoom(), sessionFailed]);
            }
            if (seen?.drop) continue;
            try {
              ev = builder.build(c);
            } catch (err) {
              ev = poison(c, 'conversion', err as Error);
            }
          }
          if (!ev) continue;
          const size = eventSize(ev);
          if (size > maxPayload()) {
            ev = poison(c, 'too_large', new Error(`event of ${size} bytes exceeds the NATS max_payload of ${maxPayload()} bytes`), size);
          }
          if (!publisher.send(ev)) await Promise.race([publisher.whenRoom(), sessionFailed]);
          lastPublished = { commitLsn: ev.commitLsn, seq: ev.seq };
          if (opts.metrics && c.kind !== 'relation' && c.kind !== 'begin' && c.kind !== 'commit') {
            opts.metrics.countEvent(c, pgTimeToUnixMs(c.commitTimeUs));
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
        ctx.lockGone,
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
      if (heartbeat) clearInterval(heartbeat);
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
    role: () => (state === 'standby' ? 'standby' : state === 'streaming' || state === 'stopping' ? 'active' : 'none'),
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
      if (state !== 'failed' && state !== 'stopped') state = 'stopping';
      wakeBackoff?.();
      await currentStop?.();
      await done;
    },
  };
}
