/**
 * Stream provisioning: one JetStream stream per source database, which walnats alone writes
 * to. `ensureStream` creates it, brings its settings in line with the configuration, or
 * refuses to touch a stream that is not one of ours.
 *
 * Ownership: nats-server 2.9 has no stream metadata, so a walnats stream is marked by its
 * description, which starts with `walnats` (`STREAM_DESCRIPTION`). An existing stream whose
 * description does not, or whose subjects differ from the expected ones, is refused.
 */
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';

export const STREAM_DESCRIPTION = 'walnats change events (written by walnats only)';
const OWNER_MARK = 'walnats';

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Default 1. */
  replicas?: number;
  /** Default 2 minutes. */
  duplicateWindowMs?: number;
  /** Default unlimited. */
  maxBytes?: number;
  /** Default unlimited (0). */
  maxAgeMs?: number;
  /** Default 'file'. */
  storage?: 'file' | 'memory';
  /** Default STREAM_DESCRIPTION; must start with "walnats". */
  description?: string;
}

export interface EnsureStreamResult {
  info: StreamInfo;
  created: boolean;
  /** Names of the settings that were changed on an existing stream. */
  updated: string[];
}

export class StreamConflictError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StreamConflictError';
  }
}

function sameSet(a: string[], b: string[]): boolean {
  const sa = new Set(a);
  return sa.size === new Set(b).size && b.every((x) => sa.has(x));
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; message?: unknown; apiError?: () => { err_code?: number } };
  if (e?.name === 'StreamNotFoundError') return true;
  try {
    if (typeof e?.apiError === 'function' && e.apiError().err_code === 10059) return true;
  } catch {
    /* not an API error */
  }
  return typeof e?.message === 'string' && /stream not found/i.test(e.message);
}

export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<EnsureStreamResult> {
  const replicas = spec.replicas ?? 1;
  const dupMs = spec.duplicateWindowMs ?? 120_000;
  const maxBytes = spec.maxBytes ?? -1;
  const maxAgeMs = spec.maxAgeMs ?? 0;
  const storage = spec.storage === 'memory' ? StorageType.Memory : StorageType.File;
  const description = spec.description ?? STREAM_DESCRIPTION;
  if (!description.startsWith(OWNER_MARK)) throw new Error(`stream description must start with "${OWNER_MARK}"`);
  // `%` is legal for nats-server but breaks it: 2.9 builds consumer ack subjects with the
  // stream name inside a Go format string, so every delivery to a consumer is corrupted.
  if (!/^[^\s.*>/\\%]+$/.test(spec.name)) {
    throw new Error(`invalid stream name ${JSON.stringify(spec.name)}: no whitespace, ".", "*", ">", "/", "\\" or "%" allowed`);
  }
  if (spec.subjects.length === 0) throw new Error(`stream ${spec.name}: no subjects`);
  if (maxAgeMs > 0 && dupMs > maxAgeMs) {
    throw new Error(`stream ${spec.name}: duplicate window (${dupMs} ms) must not exceed max age (${maxAgeMs} ms)`);
  }

  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(spec.name);
  } catch (err) {
    if (!isNotFound(err)) throw new Error(`cannot read stream ${spec.name}`, { cause: err });
  }

  if (!existing) {
    const cfg: Partial<StreamConfig> & { name: string } = {
      name: spec.name,
      description,
      subjects: spec.subjects,
      retention: RetentionPolicy.Limits,
      storage,
      discard: DiscardPolicy.Old,
      num_replicas: replicas,
      duplicate_window: nanos(dupMs),
      max_bytes: maxBytes,
      max_age: nanos(maxAgeMs),
    };
    try {
      return { info: await jsm.streams.add(cfg), created: true, updated: [] };
    } catch (err) {
      const msg = (err as Error)?.message ?? String(err);
      if (/overlap/i.test(msg)) {
        throw new StreamConflictError(
          `cannot create stream ${spec.name}: its subjects ${spec.subjects.join(', ')} overlap another stream's (${msg}); ` +
            `each walnats daemon needs subjects of its own: give a second daemon on the same database its own prefix (--prefix), or remove the other stream`,
          { cause: err },
        );
      }
      throw new Error(`cannot create stream ${spec.name}`, { cause: err });
    }
  }

  const c = existing.config;
  if (!(c.description ?? '').startsWith(OWNER_MARK)) {
    throw new StreamConflictError(
      `stream ${spec.name} exists but was not created by walnats (description ${JSON.stringify(c.description ?? '')}); ` +
        `choose another stream name or delete that stream`,
    );
  }
  if (!sameSet(c.subjects ?? [], spec.subjects)) {
    throw new StreamConflictError(
      `stream ${spec.name} exists with subjects [${(c.subjects ?? []).join(', ')}], expected [${spec.subjects.join(', ')}]; ` +
        `is another database or prefix using this stream name?`,
    );
  }
  if (c.retention !== RetentionPolicy.Limits) {
    throw new StreamConflictError(`stream ${spec.name} has retention ${c.retention}; walnats needs "limits"`);
  }
  if (c.storage !== storage) {
    throw new StreamConflictError(`stream ${spec.name} uses ${c.storage} storage, configured ${storage}; storage cannot be changed in place`);
  }
  if (c.sealed) throw new StreamConflictError(`stream ${spec.name} is sealed`);

  const changes: Partial<StreamConfig> = {};
  const updated: string[] = [];
  const want = <K extends keyof StreamConfig>(key: K, value: StreamConfig[K]) => {
    if (c[key] !== value) {
      changes[key] = value;
      updated.push(key);
    }
  };
  want('num_replicas', replicas);
  want('duplicate_window', nanos(dupMs));
  want('max_bytes', maxBytes);
  want('max_age', nanos(maxAgeMs));
  want('discard', DiscardPolicy.Old);
  if (updated.length === 0) return { info: existing, created: false, updated };
  try {
    const info = await jsm.streams.update(spec.name, { ...c, ...changes });
    return { info, created: false, updated };
  } catch (err) {
    throw new Error(`cannot update stream ${spec.name} (${updated.join(', ')})`, { cause: err });
  }
}
