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
    serializers: { err: pino.stdSerializers.errWithCause, error: pino.stdSerializers.errWithCause },
    redact: { paths: REDACT_PATHS, censor },
  };
  if (!config.logPretty) {
    return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
  }
  const color = opts.color ?? (dest as { isTTY?: boolean }).isTTY === true;
  const pretty: pino.DestinationStream = { write: (line: string) => void dest.write(formatPretty(line, color)) };
  return pino({ ...options, base: undefined }, pretty);
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
