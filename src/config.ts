/**
 * Configuration: ONE table of every setting (CONFIG_SETTINGS), from which flag parsing, env
 * and YAML reading, validation, `walnats config` and docs/configuration.md are all derived.
 *
 * Naming is mechanical, so that nobody has to look anything up:
 *   key `pg_url` ↔ env `WALNATS_PG_URL` ↔ flag `--pg-url` ↔ YAML key `pg_url`
 * and every setting can be read from a file instead (`WALNATS_PG_URL_FILE`, `--pg-url-file`,
 * `pg_url_file:`), trailing newline trimmed, so mounted secrets and `sops exec-env` work.
 *
 * Precedence: flags > env > file > default. Every problem is collected and thrown at once in
 * one ConfigError, each naming the key and where the bad value came from, before anything
 * connects: fixing config one error per restart is the worst part of operating a daemon.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export type SettingType = 'string' | 'int' | 'bool' | 'duration' | 'list' | 'enum';

/** The subcommands of `walnats`; `config` prints the effective configuration. */
export const COMMANDS = ['cdc', 'gateway', 'all', 'demo', 'status', 'snapshot', 'config'] as const;
export type Command = (typeof COMMANDS)[number];

const CDC: Command[] = ['cdc', 'all', 'demo', 'snapshot', 'status', 'config'];
const GATEWAY: Command[] = ['gateway', 'all', 'demo', 'config'];
const EVERY: Command[] = [...COMMANDS];
const NATS_USERS: Command[] = ['cdc', 'gateway', 'all', 'status', 'snapshot', 'config'];
const SERVERS: Command[] = ['cdc', 'gateway', 'all', 'demo', 'config'];

export interface SettingDef {
  /** snake_case name; env, flag and YAML names are derived from it. */
  readonly key: string;
  readonly type: SettingType;
  /** Parsed default; `undefined` = unset. */
  readonly default?: unknown;
  /** How the default is shown in docs and `--help` when it is not a plain value. */
  readonly defaultDoc?: string;
  readonly description: string;
  /** Redacted by `walnats config` and in logs. */
  readonly secret?: boolean;
  /** Allowed values for `enum`, and for each item of a `list` when set. */
  readonly values?: readonly string[];
  /** Inclusive bounds for `int`. */
  readonly min?: number;
  readonly max?: number;
  /** A filesystem path: relative values resolve against the config file's directory or cwd. */
  readonly path?: boolean;
  /** Commands for which a value must be present. */
  readonly requiredFor?: readonly Command[];
  /** Commands that read the setting (docs; other commands accept and ignore it). */
  readonly commands: readonly Command[];
  /** Only from flags/env (the config file cannot name itself). */
  readonly notInFile?: boolean;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const SNAPSHOT_MODES = ['initial', 'never', 'initial_only'] as const;
export const POISON_POLICIES = ['stop', 'dead_letter'] as const;
export type PoisonPolicy = (typeof POISON_POLICIES)[number];
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];
export const JWT_ALGORITHMS = [
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
] as const;

export const CONFIG_SETTINGS: readonly SettingDef[] = [
  // ── general ──
  { key: 'config', type: 'string', path: true, notInFile: true, commands: EVERY,
    description: 'YAML configuration file; its keys are the setting names of this table.' },
  { key: 'pg_url', type: 'string', secret: true, requiredFor: ['cdc', 'gateway', 'all', 'status', 'snapshot'], commands: [...CDC, ...GATEWAY],
    description: 'Postgres connection URL of the source database (`postgres://user:pass@host:5432/db`). `demo` starts its own.' },
  { key: 'nats_url', type: 'list', default: ['nats://127.0.0.1:4222'], commands: EVERY,
    description: 'NATS seed servers, comma-separated.' },
  { key: 'http_port', type: 'int', default: 8080, min: 0, max: 65535, commands: SERVERS,
    description: 'Port of the HTTP server (`/metrics`, `/healthz`, `/readyz`, `/graphql`); 0 picks a free port.' },
  { key: 'http_host', type: 'string', default: '0.0.0.0', commands: SERVERS,
    description: 'Address the HTTP server binds to.' },
  { key: 'log_level', type: 'enum', values: LOG_LEVELS, default: 'info', commands: EVERY,
    description: 'Minimum log level.' },
  { key: 'log_pretty', type: 'bool', defaultDoc: 'true when stdout is a terminal (always for `walnats demo`)', commands: EVERY,
    description: 'Human-readable single-line logs instead of JSON.' },
  // ── CDC ──
  { key: 'prefix', type: 'string', default: 'walnats', commands: [...CDC, ...GATEWAY],
    description: 'First token of every subject: `<prefix>.<database>.<schema>.<table>.<op>`.' },
  { key: 'publication', type: 'string', default: 'walnats', commands: CDC,
    description: 'Postgres publication to read.' },
  { key: 'slot', type: 'string', default: 'walnats', commands: CDC,
    description: 'Logical replication slot to read.' },
  { key: 'tables', type: 'list', default: [], commands: CDC,
    description: 'Tables to capture, as `schema.table`, comma-separated; empty = `FOR ALL TABLES`.' },
  { key: 'create_slot', type: 'bool', default: true, commands: CDC,
    description: 'Create the slot when it is missing.' },
  { key: 'create_publication', type: 'bool', default: true, commands: CDC,
    description: 'Create the publication when it is missing.' },
  { key: 'snapshot_mode', type: 'enum', values: SNAPSHOT_MODES, default: 'initial', commands: CDC,
    description: '`initial`: snapshot the tables when the slot is created, then stream; `never`: stream only; `initial_only`: snapshot, then exit.' },
  { key: 'stream_name', type: 'string', defaultDoc: '`<prefix>_<database>`, sanitized', commands: [...CDC, ...GATEWAY],
    description: 'JetStream stream holding the events of this database.' },
  { key: 'stream_replicas', type: 'int', default: 1, min: 1, max: 5, commands: CDC,
    description: 'Replicas of the stream when walnats creates it.' },
  { key: 'stream_duplicate_window', type: 'duration', default: 120_000, commands: CDC,
    description: 'JetStream duplicate window of the stream (deduplication by `Nats-Msg-Id`).' },
  { key: 'stream_max_bytes', type: 'int', default: -1, min: -1, commands: CDC,
    description: 'Size limit of the stream in bytes; -1 = unlimited.' },
  { key: 'stream_max_age', type: 'duration', default: 0, commands: CDC,
    description: 'Age limit of messages in the stream; 0 = unlimited.' },
  { key: 'publish_window', type: 'int', default: 4096, min: 1, commands: CDC,
    description: 'Maximum events published and not yet acknowledged by JetStream.' },
  { key: 'publish_ack_timeout', type: 'duration', default: 10_000, commands: CDC,
    description: 'How long to wait for a JetStream acknowledgement before retrying.' },
  { key: 'status_interval', type: 'duration', default: 1_000, commands: CDC,
    description: 'How often the daemon confirms its position to Postgres.' },
  { key: 'transaction_markers', type: 'bool', default: false, commands: CDC,
    description: 'Publish transaction begin/commit marker events.' },
  { key: 'poison_policy', type: 'enum', values: POISON_POLICIES, default: 'stop', commands: CDC,
    description: 'A change that cannot be turned into an event or published (e.g. larger than NATS max_payload): `stop` the daemon naming LSN, table and reason, or park it on `<prefix>.<db>.$deadletter.<schema>.<table>` and go on (`dead_letter`).' },
  { key: 'heartbeat_interval', type: 'duration', default: 0, commands: CDC,
    description: 'Write a heartbeat into the WAL (`pg_logical_emit_message`) this often and publish it on `<prefix>.<db>.$heartbeat`; 0 = off.' },
  { key: 'slot_recreate', type: 'bool', default: false, commands: CDC,
    description: 'Allow creating a new slot when the stream already holds events (the old slot was dropped or invalidated): changes in between are lost, the new slot\'s snapshot covers the rows.' },
  { key: 'slot_lag_warn_bytes', type: 'int', default: 1_073_741_824, min: 0, commands: CDC,
    description: 'Log a warning while the slot holds back more WAL than this (bytes); 0 = never.' },
  // ── gateway ──
  { key: 'gateway_schemas', type: 'list', default: ['public'], commands: GATEWAY,
    description: 'Postgres schemas exposed through GraphQL.' },
  { key: 'admin_secret', type: 'string', secret: true, commands: GATEWAY,
    description: 'Secret of the `X-Walnats-Admin-Secret` header (admin role, no row filters).' },
  { key: 'jwt_secret', type: 'string', secret: true, commands: GATEWAY,
    description: 'HMAC key for HS256/384/512 JWTs.' },
  { key: 'jwt_public_key', type: 'string', secret: true, commands: GATEWAY,
    description: 'PEM public key for RS*/PS*/ES*/EdDSA JWTs (use `jwt_public_key_file` for a file).' },
  { key: 'jwt_jwks_url', type: 'string', commands: GATEWAY,
    description: 'JWKS URL to fetch JWT verification keys from.' },
  { key: 'jwt_algorithms', type: 'list', values: JWT_ALGORITHMS, default: [], defaultDoc: 'those of the key type', commands: GATEWAY,
    description: 'Accepted JWT algorithms, comma-separated.' },
  { key: 'jwt_claims_namespace', type: 'string', default: 'https://hasura.io/jwt/claims', commands: GATEWAY,
    description: 'Claim holding `x-hasura-default-role`, `x-hasura-allowed-roles` and session variables.' },
  { key: 'anonymous_role', type: 'string', commands: GATEWAY,
    description: 'Role of requests without credentials; unset = such requests are refused (when auth is configured).' },
  { key: 'permissions_file', type: 'string', path: true, commands: GATEWAY,
    description: 'YAML file of per-role, per-table permissions.' },
  { key: 'validators_dir', type: 'string', path: true, commands: GATEWAY,
    description: 'Directory of per-table write validators (JS/TS modules).' },
  { key: 'gateway_max_depth', type: 'int', default: 10, min: 1, commands: GATEWAY,
    description: 'Maximum GraphQL query depth.' },
  { key: 'gateway_max_rows', type: 'int', default: 1000, min: 1, commands: GATEWAY,
    description: 'Maximum rows returned by one list field.' },
  { key: 'gateway_statement_timeout', type: 'duration', default: 10_000, commands: GATEWAY,
    description: 'Postgres `statement_timeout` of gateway queries.' },
  { key: 'gateway_introspection', type: 'bool', default: true, commands: GATEWAY,
    description: 'Allow GraphQL introspection (the admin role always may).' },
  { key: 'gateway_rate_limit', type: 'int', default: 0, min: 0, commands: GATEWAY,
    description: 'GraphQL operations per second each role may start (token bucket, bursts of up to one second\'s worth; refused with a `rate-limited` error and HTTP 429); 0 = unlimited. The admin role is exempt; a role\'s `rate_limit` in the permissions file overrides it.' },
  // ── NATS connection ──
  { key: 'nats_user', type: 'string', commands: NATS_USERS, description: 'NATS user name.' },
  { key: 'nats_password', type: 'string', secret: true, commands: NATS_USERS, description: 'NATS password.' },
  { key: 'nats_token', type: 'string', secret: true, commands: NATS_USERS, description: 'NATS authentication token.' },
  { key: 'nats_creds_file', type: 'string', path: true, commands: NATS_USERS, description: 'NATS credentials file (JWT + NKey seed).' },
  { key: 'nats_nkey_seed', type: 'string', secret: true, commands: NATS_USERS, description: 'NATS NKey seed (`SU…`).' },
  { key: 'nats_tls_ca', type: 'string', path: true, commands: NATS_USERS, description: 'CA certificate file (PEM) to verify the NATS servers.' },
  { key: 'nats_tls_cert', type: 'string', path: true, commands: NATS_USERS, description: 'Client certificate file (PEM) for NATS TLS.' },
  { key: 'nats_tls_key', type: 'string', path: true, commands: NATS_USERS, description: 'Client key file (PEM) for NATS TLS.' },
];

/** The effective configuration. Durations are milliseconds. */
export interface WalnatsConfig {
  /** The YAML file read, absolute; undefined when none. */
  config: string | undefined;
  /** Empty only for `demo` (which supplies its own) and `config`. */
  pgUrl: string;
  natsUrl: string[];
  httpPort: number;
  httpHost: string;
  logLevel: LogLevel;
  logPretty: boolean;
  prefix: string;
  publication: string;
  slot: string;
  /** `schema.table` as given; empty = all tables. */
  tables: string[];
  createSlot: boolean;
  createPublication: boolean;
  snapshotMode: SnapshotMode;
  /** Undefined = derived: `defaultStreamName(prefix, database)`. */
  streamName: string | undefined;
  streamReplicas: number;
  streamDuplicateWindow: number;
  streamMaxBytes: number;
  /** 0 = unlimited. */
  streamMaxAge: number;
  publishWindow: number;
  publishAckTimeout: number;
  statusInterval: number;
  transactionMarkers: boolean;
  poisonPolicy: PoisonPolicy;
  heartbeatInterval: number;
  slotRecreate: boolean;
  slotLagWarnBytes: number;
  gatewaySchemas: string[];
  adminSecret: string | undefined;
  jwtSecret: string | undefined;
  jwtPublicKey: string | undefined;
  jwtJwksUrl: string | undefined;
  /** Empty = the algorithms of the configured key type. */
  jwtAlgorithms: string[];
  jwtClaimsNamespace: string;
  anonymousRole: string | undefined;
  permissionsFile: string | undefined;
  validatorsDir: string | undefined;
  gatewayMaxDepth: number;
  gatewayMaxRows: number;
  gatewayStatementTimeout: number;
  gatewayIntrospection: boolean;
  gatewayRateLimit: number;
  natsUser: string | undefined;
  natsPassword: string | undefined;
  natsToken: string | undefined;
  natsCredsFile: string | undefined;
  natsNkeySeed: string | undefined;
  natsTlsCa: string | undefined;
  natsTlsCert: string | undefined;
  natsTlsKey: string | undefined;
}

// ── naming ─────────────────────────────────────────────────────────────────────────────

export const ENV_PREFIX = 'WALNATS_';
export const envName = (key: string): string => ENV_PREFIX + key.toUpperCase();
export const flagName = (key: string): string => '--' + key.replace(/_/g, '-');
export const camelName = (key: string): string => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

const BY_KEY = new Map(CONFIG_SETTINGS.map((s) => [s.key, s]));

/**
 * WALNATS_* variables that are not settings but belong to the test harness and benchmarks;
 * they must not make the daemon refuse to start in a developer's shell.
 */
export const IGNORED_ENV = new Set(['WALNATS_PG_BIN', 'WALNATS_NATS_SERVER']);
const IGNORED_ENV_PREFIXES = ['WALNATS_TEST_', 'WALNATS_BENCH_'];

// ── errors ─────────────────────────────────────────────────────────────────────────────

/** Where a raw value came from, for error messages and `walnats config`. */
export type Source =
  | { kind: 'flag'; name: string }
  | { kind: 'env'; name: string }
  | { kind: 'file'; file: string; line?: number }
  | { kind: 'default' };

export function describeSource(s: Source): string {
  switch (s.kind) {
    case 'flag': return `flag ${s.name}`;
    case 'env': return `env ${s.name}`;
    case 'file': return `file ${s.file}${s.line ? ` line ${s.line}` : ''}`;
    case 'default': return 'default';
  }
}

export interface ConfigProblem {
  /** The setting's key, or the unknown name as written. */
  key: string;
  /** Human description of the source (`env WALNATS_HTTP_PORT`, `file x.yaml line 3`). */
  source: string;
  message: string;
}

/** ` (where it was set)`, unless that only repeats the name (`--pg-ur: unknown flag (flag --pg-ur)`). */
function sourceSuffix(p: ConfigProblem): string {
  return p.source === `flag ${p.key}` || p.source === `env ${p.key}` ? '' : ` (${p.source})`;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[], options?: ErrorOptions) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p.key}: ${p.message}${sourceSuffix(p)}`).join('\n'),
      options,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

// ── value parsing ──────────────────────────────────────────────────────────────────────

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `10s`, `2m`, `1h`, `1h30m`, `1.5s` or plain milliseconds → milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = part.exec(t))) {
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    end = part.lastIndex;
  }
  if (t === '' || end !== t.length) throw new Error(`expected a duration like 500ms, 10s, 2m, 1h or milliseconds, got ${JSON.stringify(text)}`);
  return Math.round(total);
}

/** Milliseconds → the shortest duration text, for docs and `walnats config`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** Turns one raw value (string from flag/env/file-secret, or a YAML scalar/sequence) into the setting's type. */
export function parseValue(def: SettingDef, raw: unknown): unknown {
  switch (def.type) {
    case 'string': {
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
      throw new Error(`expected a string, got ${describe(raw)}`);
    }
    case 'int': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw)) n = Number(raw);
      else throw new Error(`expected an integer, got ${describe(raw)}`);
      if (!Number.isSafeInteger(n)) throw new Error(`expected an integer, got ${describe(raw)}`);
      if (def.min !== undefined && n < def.min) throw new Error(`must be at least ${def.min}, got ${n}`);
      if (def.max !== undefined && n > def.max) throw new Error(`must be at most ${def.max}, got ${n}`);
      return n;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = typeof raw === 'string' || typeof raw === 'number' ? String(raw).trim().toLowerCase() : undefined;
      if (s !== undefined && TRUE.has(s)) return true;
      if (s !== undefined && FALSE.has(s)) return false;
      throw new Error(`expected true or false, got ${describe(raw)}`);
    }
    case 'duration': {
      if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 0) return raw;
      if (typeof raw === 'string') return parseDuration(raw);
      throw new Error(`expected a duration like 500ms, 10s, 2m, 1h or milliseconds, got ${describe(raw)}`);
    }
    case 'enum': {
      if (typeof raw === 'string' && def.values!.includes(raw.trim())) return raw.trim();
      throw new Error(`expected one of ${def.values!.join(', ')}, got ${describe(raw)}`);
    }
    case 'list': {
      let items: string[];
      if (typeof raw === 'string') items = raw.split(',');
      else if (Array.isArray(raw) && raw.every((x) => typeof x === 'string' || typeof x === 'number')) items = raw.map(String);
      else throw new Error(`expected a comma-separated string or a list of strings, got ${describe(raw)}`);
      items = items.map((s) => s.trim()).filter((s) => s !== '');
      if (def.values) {
        const bad = items.filter((i) => !def.values!.includes(i));
        if (bad.length) throw new Error(`unknown value${bad.length > 1 ? 's' : ''} ${bad.join(', ')}: expected some of ${def.values.join(', ')}`);
      }
      return items;
    }
  }
}

function describe(raw: unknown): string {
  if (raw === null) return 'null';
  if (Array.isArray(raw)) return 'a list';
  if (typeof raw === 'object') return 'a mapping';
  return JSON.stringify(raw);
}

// ── per-setting checks beyond the type ───────────────────────────────────────────────

const IDENT_PART = String.raw`(?:"(?:[^"]|"")+"|[^."\s]+)`;
const TABLE_NAME = new RegExp(`^${IDENT_PART}\\.${IDENT_PART}$`);
/** A NATS subject token (or dotted tokens for the prefix): no wildcards, no whitespace, no empty token. */
const SUBJECT_PREFIX = /^[^.\s*>]+(?:\.[^.\s*>]+)*$/;
/** JetStream stream names: no whitespace, dots, wildcards or path separators. */
const STREAM_NAME = /^[^.\s*>/\\]+$/;

function checkSetting(key: string, value: unknown): string | undefined {
  switch (key) {
    case 'tables': {
      const bad = (value as string[]).filter((t) => !TABLE_NAME.test(t));
      return bad.length ? `expected schema.table (quote names containing dots), got ${bad.map((b) => JSON.stringify(b)).join(', ')}` : undefined;
    }
    case 'prefix':
      return SUBJECT_PREFIX.test(value as string) ? undefined : `not a valid subject prefix: ${JSON.stringify(value)} (no spaces, *, > or empty tokens)`;
    case 'stream_name':
      return STREAM_NAME.test(value as string) ? undefined : `not a valid JetStream stream name: ${JSON.stringify(value)} (no spaces, dots, *, >, / or \\)`;
    case 'nats_url': {
      const urls = value as string[];
      if (urls.length === 0) return 'at least one NATS server is needed';
      const bad = urls.filter((u) => !/^((nats|tls|ws|wss):\/\/)?[^\s/]+(:\d+)?\/?$/.test(u));
      return bad.length ? `not a NATS server URL: ${bad.join(', ')}` : undefined;
    }
    case 'pg_url': {
      const v = value as string;
      if (v === '') return 'must not be empty';
      // node-postgres parses URLs only (and `socket:` URLs): a libpq key/value string
      // (`host=… dbname=…`) or any other text would be taken as a database name on a host
      // called "base", and fail only at connect time, over and over.
      if (!/^(postgres(ql)?:\/\/|socket:)/.test(v)) return 'expected a postgres://user:password@host:port/database URL (libpq key=value strings are not supported)';
      try { new URL(v); } catch { return 'not a valid postgres:// URL'; }
      return undefined;
    }
    case 'publication':
    case 'slot':
      return (value as string) === '' ? 'must not be empty' : undefined;
  }
  return undefined;
}

// ── sources ──────────────────────────────────────────────────────────────────────────

/** One raw value from one source, before parsing. */
interface RawValue {
  key: string;
  raw: unknown;
  source: Source;
  /** Set when `raw` is the path of a file holding the value (`*_FILE`). */
  fromFile?: string;
}

/** A flag as the command line gave it, before it is matched against the table. */
export interface RawFlag {
  /** As written, without the value: `--pg-url`, `--no-create-slot`. */
  name: string;
  /** undefined for a bare boolean flag. */
  value: string | undefined;
}

/** Resolves `name` (a YAML key, or env/flag name already mapped to snake_case) to a setting, possibly via `_file`. */
function resolveName(name: string): { def: SettingDef; viaFile: boolean } | undefined {
  const def = BY_KEY.get(name);
  if (def) return { def, viaFile: false };
  if (name.endsWith('_file')) {
    const base = BY_KEY.get(name.slice(0, -'_file'.length));
    if (base) return { def: base, viaFile: true };
  }
  return undefined;
}

/** The closest setting name, for "did you mean", shown as `display` spells it (flag, env or YAML key). */
function suggest(name: string, display: (key: string) => string = (k) => k): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const s of CONFIG_SETTINGS) {
    const d = editDistance(name, s.key);
    if (d < bestD) { bestD = d; best = s.key; }
  }
  return best && bestD <= Math.max(2, Math.floor(name.length / 4)) ? ` (did you mean ${display(best)}?)` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length];
}

function fromFlags(flags: RawFlag[], problems: ConfigProblem[]): RawValue[] {
  const out: RawValue[] = [];
  for (const f of flags) {
    const bare = f.name.replace(/^--/, '');
    const negated = bare.startsWith('no-') && f.value === undefined;
    const snake = (negated ? bare.slice(3) : bare).replace(/-/g, '_');
    const r = resolveName(snake);
    const source: Source = { kind: 'flag', name: f.name };
    if (!r || (r.viaFile && negated)) {
      problems.push({ key: f.name, source: describeSource(source), message: `unknown flag${suggest(snake, flagName)}` });
      continue;
    }
    if (negated || (f.value === undefined && !r.viaFile && r.def.type === 'bool')) {
      if (r.def.type !== 'bool') {
        problems.push({ key: r.def.key, source: describeSource(source), message: negated ? `${f.name} is only for true/false settings` : 'needs a value' });
        continue;
      }
      out.push({ key: r.def.key, raw: !negated, source });
      continue;
    }
    if (f.value === undefined) {
      problems.push({ key: r.def.key, source: describeSource(source), message: 'needs a value' });
      continue;
    }
    out.push({ key: r.def.key, raw: f.value, source, fromFile: r.viaFile ? f.value : undefined });
  }
  return out;
}

function fromEnv(env: Record<string, string | undefined>, problems: ConfigProblem[]): RawValue[] {
  const out: RawValue[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    if (IGNORED_ENV.has(name) || IGNORED_ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    const snake = name.slice(ENV_PREFIX.length).toLowerCase();
    const r = resolveName(snake);
    const source: Source = { kind: 'env', name };
    if (!r) {
      problems.push({ key: name, source: describeSource(source), message: `unknown setting${suggest(snake, envName)}` });
      continue;
    }
    out.push({ key: r.def.key, raw: value, source, fromFile: r.viaFile ? value : undefined });
  }
  return out;
}

function fromYaml(file: string, text: string, problems: ConfigProblem[]): RawValue[] {
  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? undefined : lineCounter.linePos(offset).line);
  if (doc.errors.length) {
    for (const e of doc.errors) {
      const line = lineOf(e.pos[0]);
      problems.push({ key: '(file)', source: describeSource({ kind: 'file', file, line }), message: `YAML syntax error: ${e.message.split('\n')[0]}` });
    }
    return [];
  }
  const contents = doc.contents;
  if (contents === null || (YAML.isScalar(contents) && (contents.value === null || contents.value === ''))) return []; // empty file
  if (!YAML.isMap(contents)) {
    problems.push({ key: '(file)', source: describeSource({ kind: 'file', file, line: lineOf(contents.range?.[0]) }), message: 'expected a mapping of setting names to values' });
    return [];
  }
  const out: RawValue[] = [];
  for (const pair of contents.items) {
    const keyNode = pair.key;
    const name = YAML.isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
    const source: Source = { kind: 'file', file, line: lineOf(YAML.isNode(keyNode) ? keyNode.range?.[0] : undefined) };
    const r = resolveName(name);
    if (!r || r.def.notInFile) {
      problems.push({ key: name, source: describeSource(source), message: r ? 'cannot be set inside the config file' : `unknown setting${suggest(name)}` });
      continue;
    }
    const value = YAML.isNode(pair.value) ? pair.value.toJSON() : pair.value;
    if (value === null || value === undefined) continue; // `key:` with nothing = unset, as in most YAML configs
    if (r.viaFile && typeof value !== 'string') {
      problems.push({ key: r.def.key, source: describeSource(source), message: `${name} expects a file path, got ${describe(value)}` });
      continue;
    }
    out.push({ key: r.def.key, raw: value, source, fromFile: r.viaFile ? (value as string) : undefined });
  }
  return out;
}

// ── loading ─────────────────────────────────────────────────────────────────────────

export interface LoadConfigOptions {
  /** Config flags as parsed from the command line (see cli.ts parseCommandLine). */
  flags?: RawFlag[];
  /** Alternatively, the raw arguments after the command name; parsed generically. */
  argv?: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Decides which settings are required; none when omitted. */
  command?: Command;
  /** Default of log_pretty. */
  stdoutIsTTY?: boolean;
}

export interface LoadedConfig {
  config: WalnatsConfig;
  /** Where each setting's effective value came from, by key. */
  sources: Record<string, Source>;
}

/** Builds the effective configuration, or throws one ConfigError with every problem. */
export function loadConfig(opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const problems: ConfigProblem[] = [];

  let command = opts.command;
  let flags = opts.flags ?? [];
  if (!opts.flags && opts.argv) {
    const split = splitFlags(opts.argv);
    flags = split.flags.filter((f) => !CLI_ONLY_FLAGS.has(f.name));
    command ??= COMMANDS.find((c) => c === split.positionals[0]);
  }
  const flagValues = fromFlags(flags, problems);
  const envValues = fromEnv(env, problems);

  // The config file's own location follows the same precedence, and is read before the rest.
  let fileValues: RawValue[] = [];
  const configRaw = [...flagValues, ...envValues].find((v) => v.key === 'config');
  let configFile: string | undefined;
  if (configRaw) {
    const p = configRaw.fromFile !== undefined ? readSecretFile(configRaw, cwd, problems) : String(configRaw.raw);
    if (p !== undefined) {
      configFile = path.resolve(cwd, p);
      try {
        fileValues = fromYaml(configFile, fs.readFileSync(configFile, 'utf8'), problems);
      } catch (err) {
        problems.push({ key: 'config', source: describeSource(configRaw.source), message: `cannot read ${configFile}: ${(err as Error).message}` });
      }
    }
  }

  // Later sources lose: flags > env > file. Two values from one source (e.g. X and X_FILE) conflict.
  const chosen = new Map<string, RawValue>();
  for (const group of [flagValues, envValues, fileValues]) {
    const seen = new Map<string, RawValue>();
    for (const v of group) {
      const prev = seen.get(v.key);
      if (prev && (prev.fromFile === undefined) !== (v.fromFile === undefined)) {
        problems.push({ key: v.key, source: `${describeSource(prev.source)} and ${describeSource(v.source)}`, message: 'set twice; use either the value or the _FILE variant' });
      }
      seen.set(v.key, v); // a repeated flag: the last one wins, as usual on command lines
    }
    for (const [k, v] of seen) if (!chosen.has(k)) chosen.set(k, v);
  }

  const values: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  for (const def of CONFIG_SETTINGS) {
    const rv = chosen.get(def.key);
    if (!rv) {
      values[def.key] = def.key === 'log_pretty' ? (opts.stdoutIsTTY ?? process.stdout.isTTY === true) : structuredClone(def.default);
      sources[def.key] = { kind: 'default' };
      continue;
    }
    sources[def.key] = rv.source;
    let raw = rv.raw;
    if (rv.fromFile !== undefined) {
      const text = readSecretFile(rv, rv.source.kind === 'file' ? path.dirname(rv.source.file) : cwd, problems);
      if (text === undefined) continue;
      raw = text;
    }
    try {
      let value = parseValue(def, raw);
      if (def.path && typeof value === 'string' && value !== '') {
        value = path.resolve(rv.source.kind === 'file' ? path.dirname(rv.source.file) : cwd, value);
      }
      const bad = checkSetting(def.key, value);
      if (bad) throw new Error(bad);
      values[def.key] = value;
    } catch (err) {
      problems.push({ key: def.key, source: describeSource(rv.source) + (rv.fromFile !== undefined ? ` (file ${rv.fromFile})` : ''), message: (err as Error).message });
    }
  }
  if (configFile) values.config = configFile;

  if (command) {
    for (const def of CONFIG_SETTINGS) {
      if (def.requiredFor?.includes(command) && (values[def.key] === undefined || values[def.key] === '') && !chosen.has(def.key)) {
        problems.push({
          key: def.key,
          source: 'not set',
          message: `required for \`walnats ${command}\`: set ${envName(def.key)}, ${flagName(def.key)} or ${def.key} in the config file`,
        });
      }
    }
  }
  crossChecks(values, sources, problems);

  if (problems.length) throw new ConfigError(problems);
  const config = {} as Record<string, unknown>;
  for (const def of CONFIG_SETTINGS) config[camelName(def.key)] = values[def.key];
  if (config.pgUrl === undefined) config.pgUrl = '';
  return { config: config as unknown as WalnatsConfig, sources };
}

/** Settings that are fine alone but contradict each other. */
function crossChecks(values: Record<string, unknown>, sources: Record<string, Source>, problems: ConfigProblem[]): void {
  const set = (k: string) => values[k] !== undefined && values[k] !== '';
  const where = (k: string) => describeSource(sources[k]);
  const keys = ['jwt_secret', 'jwt_public_key', 'jwt_jwks_url'].filter(set);
  if (keys.length > 1) {
    problems.push({ key: keys.join(', '), source: keys.map(where).join(', '), message: 'choose one JWT key source' });
  }
  if (set('nats_tls_cert') !== set('nats_tls_key')) {
    const k = set('nats_tls_cert') ? 'nats_tls_cert' : 'nats_tls_key';
    problems.push({ key: k, source: where(k), message: 'nats_tls_cert and nats_tls_key go together' });
  }
  if (set('nats_password') && !set('nats_user')) {
    problems.push({ key: 'nats_password', source: where('nats_password'), message: 'needs nats_user' });
  }
}

function readSecretFile(rv: RawValue, baseDir: string, problems: ConfigProblem[]): string | undefined {
  const file = path.resolve(baseDir, rv.fromFile!);
  try {
    // One trailing newline (what `echo` and most editors add) is not part of the secret.
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    problems.push({ key: rv.key, source: describeSource(rv.source), message: `cannot read ${file}: ${(err as Error).message}` });
    return undefined;
  }
}

/** Flags the CLI itself handles; never settings. */
export const CLI_ONLY_FLAGS = new Set(['--json', '--help', '-h', '--version', '-V']);

/**
 * Splits `--key value`, `--key=value`, `--flag`, `--no-flag` out of a list of arguments, using
 * the table to know which flags take no value (booleans). Everything else is a positional.
 * Unknown flags take the next argument as their value unless it looks like a flag: an
 * unknown flag is most often a typo of a valued one, and it is reported either way.
 */
export function splitFlags(argv: string[]): { flags: RawFlag[]; positionals: string[] } {
  const flags: RawFlag[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) { positionals.push(a); continue; }
    const eq = a.indexOf('=');
    if (eq > 0) { flags.push({ name: a.slice(0, eq), value: a.slice(eq + 1) }); continue; }
    if (CLI_ONLY_FLAGS.has(a) || !a.startsWith('--')) { flags.push({ name: a, value: undefined }); continue; }
    const snake = a.slice(2).replace(/-/g, '_');
    const r = resolveName(snake);
    const takesNoValue = r ? r.def.type === 'bool' && !r.viaFile : snake.startsWith('no_') && !!resolveName(snake.slice(3));
    const next = argv[i + 1];
    if (takesNoValue || next === undefined || next.startsWith('--')) {
      flags.push({ name: a, value: undefined });
    } else {
      flags.push({ name: a, value: next });
      i++;
    }
  }
  return { flags, positionals };
}

// ── output ──────────────────────────────────────────────────────────────────────────

const REDACTED = '[redacted]';

/** Masks the password of a URL; other strings are returned unchanged. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):[^@/\s]*@/i, `$1:${REDACTED}@`);
}

/**
 * A secret's printable form. A connection URL keeps its host and database visible (that is
 * what one checks when debugging) and loses its password, in the user part or as a
 * `password=` parameter; anything else is replaced entirely.
 */
export function redactSecret(text: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return redactUrl(text).replace(/([?&]password=)[^&]*/gi, `$1${REDACTED}`);
  if (/(^|\s)password\s*=/.test(text)) return text.replace(/(password\s*=\s*)('[^']*'|\S+)/g, `$1${REDACTED}`);
  return REDACTED;
}

/** The effective configuration with secrets replaced, for printing and logging. */
export function redactConfig(config: WalnatsConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const def of CONFIG_SETTINGS) {
    const v = (config as unknown as Record<string, unknown>)[camelName(def.key)];
    if (v === undefined || v === '') out[def.key] = v;
    else if (def.secret) out[def.key] = redactSecret(String(v));
    else if (typeof v === 'string') out[def.key] = redactUrl(v);
    else if (Array.isArray(v)) out[def.key] = v.map((x) => (typeof x === 'string' ? redactUrl(x) : x));
    else out[def.key] = v;
  }
  return out;
}

/** YAML text of the effective configuration (redacted), each line commented with its source. */
export function formatConfig(loaded: LoadedConfig): string {
  const redacted = redactConfig(loaded.config);
  const lines: string[] = [];
  for (const def of CONFIG_SETTINGS) {
    if (def.notInFile) continue;
    const v = redacted[def.key];
    const src = describeSource(loaded.sources[def.key] ?? { kind: 'default' });
    if (v === undefined || v === '') {
      lines.push(`# ${def.key}:   (unset)`);
      continue;
    }
    const shown = def.type === 'duration' && v !== 0 ? formatDuration(v as number) : v;
    const text = YAML.stringify(shown, { collectionStyle: 'flow', lineWidth: 0 }).trimEnd();
    lines.push(`${def.key}: ${text}   # ${src}`);
  }
  const head = loaded.config.config ? `# walnats configuration (file ${loaded.config.config})` : '# walnats configuration';
  return [head, ...lines].join('\n') + '\n';
}

/** Default shown in docs and help. */
export function defaultText(def: SettingDef): string {
  if (def.defaultDoc) return def.defaultDoc;
  const d = def.default;
  if (d === undefined) return '';
  if (def.type === 'duration') return formatDuration(d as number);
  if (Array.isArray(d)) return d.join(',');
  return String(d);
}
