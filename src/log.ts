/**
 * Logging: pino JSON lines on stdout (what log collectors want), or one human line per entry
 * when log_pretty is on (a terminal). The pretty form is a tiny formatter of our own rather
 * than pino-pretty: one dependency less, and it runs in-process without a worker thread.
 *
 * Components log through child loggers: `logger.child({ component: 'cdc' })`.
 */
import pino, { type Logger as PinoLogger } from 'pino';
import { CONFIG_SETTINGS, camelName, redactSecret, redactUrl, type WalnatsConfig } from './config.ts';

export type Logger = PinoLogger;

/** Anything with a `write(line)`; stdout by default. */
export interface LogDestination {
  write(line: string): unknown;
}

export interface CreateLoggerOptions {
  destination?: LogDestination;
  /** Colours in pretty mode; default: the destination is a TTY. */
  color?: boolean;
}

/**
 * Secret values never reach a log line, whether a component logs a config object, a setting
 * on its own, or request headers. URLs keep their host (useful) and lose their password.
 */
const SECRET_NAMES = CONFIG_SETTINGS.filter((s) => s.secret || s.key === 'nats_url').flatMap((s) => [s.key, camelName(s.key)]);
const REDACT_PATHS = [
  ...SECRET_NAMES,
  ...SECRET_NAMES.map((n) => `*.${n}`),
  'password',
  '*.password',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'headers["x-walnats-admin-secret"]',
  'req.headers["x-walnats-admin-secret"]',
];

function censor(value: unknown, path: string[]): unknown {
  if (Array.isArray(value)) return value.map((v) => censor(v, path));
  // Server lists are not secret as such; only a password inside a URL is.
  if (/^nats_?url$/i.test(path[path.length - 1] ?? '')) return typeof value === 'string' ? redactUrl(value) : value;
  return typeof value === 'string' ? redactSecret(value) : '[redacted]';
}

export function createLogger(
  config: Pick<WalnatsConfig, 'logLevel' | 'logPretty'>,
  opts: CreateLoggerOptions = {},
): Logger {
  const dest = opts.destination ?? process.stdout;
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Level names rather than numbers: readable in any log viewer without a mapping.
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: serializeError, error: serializeError },
    redact: { paths: REDACT_PATHS, censor },
  };
  if (!config.logPretty) {
    return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
  }
  const color = opts.color ?? (dest as { isTTY?: boolean }).isTTY === true;
  const pretty: pino.DestinationStream = { write: (line: string) => void dest.write(formatPretty(line, color)) };
  return pino({ ...options, base: undefined }, pretty);
}

const MAX_ERROR_DEPTH = 5;
const MAX_ERROR_ARRAY = 20;

function isErrorLike(v: unknown): v is Error {
  return v instanceof Error || (typeof v === 'object' && v !== null && typeof (v as Error).message === 'string' && typeof (v as Error).stack === 'string');
}

/**
 * An error as a log field: type, message, stack, its cause chain (and an AggregateError's
 * errors), and its own fields that are plain values (pg's `code`, `severity`, `detail`, …).
 * Fields that are objects are named, not written out: libraries attach live objects to their
 * errors (pg's pool puts the whole client, its connection and socket on an idle error), which
 * made multi-kilobyte lines and could carry what no log should hold.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!isErrorLike(err)) return err;
  const out: Record<string, unknown> = {
    type: (err as { constructor?: { name?: string } }).constructor?.name ?? 'Error',
    message: err.message,
    stack: err.stack,
  };
  for (const [k, v] of Object.entries(err)) {
    if (k in out || k === 'cause' || k === 'errors') continue;
    // A GraphQL error's extensions (its `code`) are what tells errors apart: kept, plain values only.
    out[k] = k === 'extensions' && isPlainObject(v) ? plainValues(v) : errorField(v, depth);
  }
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined) out.cause = depth < MAX_ERROR_DEPTH ? (isErrorLike(cause) ? serializeError(cause, depth + 1) : errorField(cause, depth)) : '[…]';
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors)) out.errors = errors.slice(0, MAX_ERROR_ARRAY).map((e) => (depth < MAX_ERROR_DEPTH ? serializeError(e, depth + 1) : '[…]'));
  return out;
}

/** null, a string, a number or a boolean: written as it is. */
function isPlainValue(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (!v || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function plainValues(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v).slice(0, MAX_ERROR_ARRAY)) {
    if (isPlainValue(x)) out[k] = x;
  }
  return out;
}

function errorField(v: unknown, depth: number): unknown {
  if (v === undefined || isPlainValue(v)) return v;
  if (typeof v === 'bigint') return String(v);
  if (isErrorLike(v)) return depth < MAX_ERROR_DEPTH ? serializeError(v, depth + 1) : '[…]';
  if (Array.isArray(v) && v.length <= MAX_ERROR_ARRAY && v.every(isPlainValue)) return v;
  if (typeof v === 'function') return undefined;
  const name = (v as { constructor?: { name?: string } }).constructor?.name;
  return `[${name && name !== 'Object' ? name : Array.isArray(v) ? 'Array' : 'object'}]`;
}

const LEVEL_COLORS: Record<string, string> = {
  trace: '\x1b[90m', debug: '\x1b[36m', info: '\x1b[32m', warn: '\x1b[33m', error: '\x1b[31m', fatal: '\x1b[35m',
};
const OMIT = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** One pino JSON line → `HH:MM:SS LEVEL msg key=value …`. Exported for tests. */
export function formatPretty(line: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line);
  } catch {
    return line.endsWith('\n') ? line : line + '\n';
  }
  const time = new Date(typeof entry.time === 'number' || typeof entry.time === 'string' ? entry.time : Date.now());
  const hhmmss = [time.getHours(), time.getMinutes(), time.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  const label = String(entry.level ?? 'info');
  let level = label.toUpperCase().padEnd(5);
  if (color) level = `${LEVEL_COLORS[label] ?? ''}${level}\x1b[0m`;
  const parts = [hhmmss, level];
  if (entry.msg !== undefined) parts.push(String(entry.msg));
  // The component first: it says which part of the process is talking.
  const keys = Object.keys(entry).filter((k) => !OMIT.has(k)).sort((a, b) => (a === 'component' ? -1 : b === 'component' ? 1 : 0));
  for (const k of keys) parts.push(`${k}=${prettyValue(k, entry[k])}`);
  return parts.join(' ') + '\n';
}

function prettyValue(key: string, v: unknown): string {
  if ((key === 'err' || key === 'error') && v && typeof v === 'object' && 'message' in v) {
    // Keep it one line: the message, then the messages of the causes.
    const messages: string[] = [];
    for (let e: any = v; e && typeof e === 'object' && messages.length < 10; e = e.cause) messages.push(String(e.message));
    return JSON.stringify(messages.join(': '));
  }
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}
