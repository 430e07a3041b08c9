/**
 * `walnats <command> [flags]`. Parsing is pure (parseCommandLine, and loadConfig in
 * config.ts); running is thin: load the config, start the command, turn signals into a
 * graceful stop, exit with a code a supervisor understands:
 *   0 done, 1 runtime failure, 2 bad usage or configuration.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  COMMANDS,
  CONFIG_SETTINGS,
  CLI_ONLY_FLAGS,
  ConfigError,
  defaultText,
  envName,
  flagName,
  formatConfig,
  loadConfig,
  redactConfig,
  splitFlags,
  type Command,
  type RawFlag,
  type WalnatsConfig,
} from './config.ts';
// Type only (erased): main.ts itself is imported lazily, when a command needs it.
import type { RunHandle } from './main.ts';

export class UsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UsageError';
  }
}

export type ParsedCommandLine =
  | { kind: 'help'; command?: Command }
  | { kind: 'version' }
  | {
      kind: 'run';
      command: Command;
      /** Positional arguments after the command (the tables of `snapshot`). */
      args: string[];
      /** Setting flags, validated by loadConfig against the settings table. */
      flags: RawFlag[];
      /** `--json` (status, config). */
      json: boolean;
    };

const COMMAND_HELP: Record<Command, string> = {
  cdc: 'the CDC daemon: replication slot → JetStream',
  gateway: 'the GraphQL gateway',
  all: 'cdc and gateway in one process',
  demo: 'throwaway Postgres + nats-server + all, with a sample schema',
  status: 'slot lag, stream state, last published position (--json for JSON)',
  snapshot: 'ask the running daemon to backfill tables: walnats snapshot <schema.table>…',
  config: 'print the effective configuration, secrets redacted (--json for JSON)',
};

const JSON_COMMANDS: readonly Command[] = ['status', 'config'];

/** Splits the command line; throws UsageError for what no configuration could fix. */
export function parseCommandLine(argv: readonly string[]): ParsedCommandLine {
  const { flags, positionals } = splitFlags([...argv]);
  const has = (...names: string[]) => flags.some((f) => names.includes(f.name));
  const [first, ...args] = positionals;
  const command = COMMANDS.find((c) => c === first);
  if (has('--help', '-h')) return { kind: 'help', command };
  if (has('--version', '-V')) return { kind: 'version' };
  if (first === undefined) throw new UsageError('no command given');
  if (first === 'help') return { kind: 'help', command: COMMANDS.find((c) => c === args[0]) };
  if (first === 'version') return { kind: 'version' };
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(first)}; commands: ${COMMANDS.join(', ')}`);
  if (command === 'snapshot') {
    if (args.length === 0) throw new UsageError('walnats snapshot needs at least one table: walnats snapshot <schema.table>…');
  } else if (args.length > 0) {
    const hint = args.some((a) => /^(true|false|yes|no|on|off)$/i.test(a)) ? ' (true/false flags take `--flag`, `--no-flag` or `--flag=false`)' : '';
    throw new UsageError(`walnats ${command} takes no arguments, got ${args.map((a) => JSON.stringify(a)).join(' ')}${hint}`);
  }
  const json = has('--json');
  if (json && !JSON_COMMANDS.includes(command)) throw new UsageError(`--json is only for ${JSON_COMMANDS.join(' and ')}`);
  const short = flags.find((f) => !f.name.startsWith('--') && !CLI_ONLY_FLAGS.has(f.name));
  if (short) throw new UsageError(`unknown option ${short.name}`);
  return { kind: 'run', command, args, flags: flags.filter((f) => !CLI_ONLY_FLAGS.has(f.name)), json };
}

export function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--help` text, generated from the settings table like everything else. */
export function helpText(command?: Command): string {
  const lines: string[] = [];
  if (!command) {
    lines.push('usage: walnats <command> [flags]', '', 'commands:');
    for (const c of COMMANDS) lines.push(`  ${c.padEnd(10)}${COMMAND_HELP[c]}`);
    lines.push(
      '',
      'Every setting can be given as a flag (--pg-url), an environment variable (WALNATS_PG_URL),',
      'or a key of the YAML file given by --config (pg_url); flags win over env, env over the file.',
      'Any setting can be read from a file: --pg-url-file, WALNATS_PG_URL_FILE, pg_url_file.',
      '',
      'walnats <command> --help lists the settings of a command; docs/configuration.md lists all.',
    );
    return lines.join('\n') + '\n';
  }
  lines.push(`usage: walnats ${command}${command === 'snapshot' ? ' <schema.table>…' : ''} [flags]`, '', COMMAND_HELP[command], '', 'settings:');
  for (const s of CONFIG_SETTINGS) {
    if (!s.commands.includes(command)) continue;
    const arg = s.type === 'bool' ? '' : ` <${s.type === 'enum' ? s.values!.join('|') : s.type}>`;
    const def = defaultText(s);
    lines.push(`  ${flagName(s.key)}${arg}`);
    lines.push(`      ${s.description}`);
    lines.push(`      env ${envName(s.key)}${def ? `; default ${def}` : ''}${s.requiredFor?.includes(command) ? '; required' : ''}`);
  }
  return lines.join('\n') + '\n';
}

// ── running ──────────────────────────────────────────────────────────────────────

export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  cwd: string;
  stdoutIsTTY: boolean;
  /** Subscribes to SIGTERM/SIGINT/SIGHUP; returns the unsubscribe. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** Immediate exit (second signal). */
  exit(code: number): never;
  /** The module with the entry points; default `import('./main.ts')` (tests substitute it). */
  loadMain?: () => Promise<MainModule>;
}

function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    stdoutIsTTY: process.stdout.isTTY === true,
    onSignal(handler) {
      // SIGHUP too: a closed terminal or ssh session. Node's default would end the process
      // without draining or confirming, and without its exit hooks (the demo's servers, which
      // run in their own process groups and so get no hangup of their own, would stay).
      const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
      for (const s of signals) process.on(s, handler);
      return () => {
        for (const s of signals) process.off(s, handler);
      };
    },
    exit: (code) => process.exit(code),
  };
}

/** An error and its causes, one per line, for stderr. */
export function describeError(err: unknown): string {
  const lines: string[] = [];
  let e: unknown = err;
  let said = '';
  for (let depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    // A wrapper that already quotes its cause's message says it once, not twice.
    if (depth === 0 || !said.includes(msg)) lines.push(depth === 0 ? msg : `  caused by: ${msg}`);
    said = msg;
    e = e instanceof Error ? e.cause : undefined;
  }
  return lines.join('\n');
}

type MainModule = Record<string, unknown>;

async function loadMain(): Promise<MainModule> {
  return (await import('./main.ts')) as MainModule;
}

function entryPoint<T extends (...args: never[]) => unknown>(mod: MainModule, name: string, command: string): T {
  const fn = mod[name];
  if (typeof fn !== 'function') throw new Error(`walnats ${command}: not available in this build yet (main.ts has no ${name})`);
  return fn as T;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let parsed: ParsedCommandLine;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`walnats: ${err.message}\n\n${helpText()}`);
    return 2;
  }
  if (parsed.kind === 'help') {
    io.stdout.write(helpText(parsed.command));
    return 0;
  }
  if (parsed.kind === 'version') {
    io.stdout.write(`walnats ${version()}\n`);
    return 0;
  }

  let loaded;
  try {
    // The demo talks to a person even when its output is piped (`| tee`): pretty log lines by
    // default there, between its human-readable event lines; log_pretty set anywhere still wins.
    const pretty = parsed.command === 'demo' ? true : io.stdoutIsTTY;
    loaded = loadConfig({ flags: parsed.flags, env: io.env, cwd: io.cwd, command: parsed.command, stdoutIsTTY: pretty });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`walnats: ${err.message}\n`);
    return 2;
  }
  const config = loaded.config;

  try {
    switch (parsed.command) {
      case 'config':
        io.stdout.write(parsed.json ? JSON.stringify(redactConfig(config), null, 2) + '\n' : formatConfig(loaded));
        return 0;
      case 'status': {
        const { collectStatus, formatStatus, statusHasErrors } = await import('./status.ts');
        const status = await collectStatus(config);
        io.stdout.write(parsed.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
        return statusHasErrors(status) ? 1 : 0;
      }
      case 'snapshot': {
        const mod = await (io.loadMain ?? loadMain)();
        const request = entryPoint<(c: WalnatsConfig, tables: string[]) => Promise<unknown>>(mod, 'requestSnapshot', 'snapshot');
        const result = await request(config, parsed.args);
        if (result !== undefined) io.stdout.write(JSON.stringify(result, null, 2) + '\n');
        return 0;
      }
      default: {
        const names: Record<string, string> = { cdc: 'runCdc', gateway: 'runGateway', all: 'runAll', demo: 'runDemo' };
        const command = parsed.command;
        return await runUntilSignal(io, async () => {
          const start = entryPoint<(c: WalnatsConfig) => Promise<RunHandle>>(await (io.loadMain ?? loadMain)(), names[command], command);
          return start(config);
        });
      }
    }
  } catch (err) {
    const text = describeError(err);
    io.stderr.write(text.startsWith('walnats') ? `${text}\n` : `walnats ${parsed.command}: ${text}\n`);
    // Configuration found wrong only when it is used (a validator that does not load) exits as
    // a configuration error does: 2, which systemd's Restart=on-failure need not retry.
    return err instanceof ConfigError ? 2 : 1;
  }
}

/**
 * Starts a long-running command and turns SIGTERM/SIGINT into `stop()`; a second signal
 * exits at once (someone wants it gone, and a stuck drain must not hold the terminal).
 */
async function runUntilSignal(io: CliIo, start: () => Promise<RunHandle>): Promise<number> {
  let handle: RunHandle | undefined;
  let signalled = false;
  let stopping: Promise<void> | undefined;
  const requestStop = () => {
    stopping ??= handle!.stop().catch((err) => {
      io.stderr.write(`walnats: shutdown failed: ${describeError(err)}\n`);
    });
  };
  const off = io.onSignal((signal) => {
    if (signalled) {
      io.stderr.write(`walnats: ${signal} again, exiting without draining\n`);
      io.exit(128 + (os.constants.signals[signal] ?? 15));
    }
    signalled = true;
    io.stderr.write(`walnats: ${signal} received, shutting down (send it again to force)\n`);
    // A signal during start-up stops the handle as soon as there is one.
    if (handle) requestStop();
  });
  try {
    handle = await start();
    if (signalled) requestStop();
    await handle.done;
    await stopping;
    return 0;
  } finally {
    off();
  }
}

// Run when executed (bin/walnats.js or `tsx src/cli.ts`), not when imported by tests.
function isEntry(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  let real: string;
  try {
    real = fs.realpathSync(arg);
  } catch {
    return false;
  }
  const here = fileURLToPath(import.meta.url);
  const bin = path.resolve(path.dirname(here), '../bin/walnats.js');
  return real === here || real === bin;
}

if (isEntry()) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // Whatever is still open (a socket a module forgot) must not keep a finished CLI alive.
  setTimeout(() => process.exit(code), 2000).unref();
}
