/**
 * A real, throwaway Postgres cluster (for `walnats demo` and the tests): initdb in a temporary directory, started on a
 * free port with wal_level=logical, stopped and removed afterwards. Postgres refuses to run as
 * root, so when the tests run as root the server runs as the `postgres` user.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './ports.ts';
import { removeOnExit } from './owned-child.ts';

export interface PgServerOptions {
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string | number>;
  /** pg_hba.conf lines put before initdb's defaults (first match wins), e.g. `hostssl all app 127.0.0.1/32 cert`. */
  hba?: string[];
  /** Folder of the Postgres binaries to use instead of the installed ones (version matrix). */
  bin?: string;
  /**
   * Run in a process group of its own (a terminal's Ctrl-C does not reach it; this process
   * stops it) and shut it down and remove it if this process exits first. For `walnats demo`.
   */
  ownProcessGroup?: boolean;
}

export interface PgServer {
  readonly port: number;
  readonly dataDir: string;
  /** Connection string for a database (default `postgres`). */
  url(database?: string): string;
  /** Runs SQL on a fresh connection and returns the rows. */
  sql<R = Record<string, unknown>>(text: string, params?: unknown[], database?: string): Promise<R[]>;
  /** Creates a new empty database with a unique name and returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export function findPgBinDir(): string {
  if (process.env.WALNATS_PG_BIN) return process.env.WALNATS_PG_BIN;
  const root = '/usr/lib/postgresql';
  if (fs.existsSync(root)) {
    const versions = fs.readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = path.join(root, v, 'bin');
      if (fs.existsSync(path.join(dir, 'postgres'))) return dir;
    }
  }
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no Postgres binaries found: install postgresql or set WALNATS_PG_BIN');
  }
}

interface RunAs { uid?: number; gid?: number }

function runAs(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const line = execFileSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' }).trim();
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

let dbCounter = 0;

/** `url`, `sql` and `createDatabase` of a server on 127.0.0.1:port, trust auth as postgres. */
export function sqlAccess(port: number): Pick<PgServer, 'url' | 'sql' | 'createDatabase'> {
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const sql: PgServer['sql'] = async (text, params, database) => {
    const c = new pg.Client({ connectionString: url(database) });
    await c.connect();
    try {
      return (await c.query(text, params as unknown[])).rows;
    } finally {
      await c.end();
    }
  };
  return {
    url,
    sql,
    async createDatabase(prefix = 'db') {
      const name = `${prefix}_${process.pid}_${++dbCounter}`;
      await sql(`CREATE DATABASE "${name}"`);
      return name;
    },
  };
}

export async function startPostgres(opts: PgServerOptions = {}): Promise<PgServer> {
  const bin = opts.bin ?? findPgBinDir();
  const user = runAs();
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-pg-'));
  const dataDir = path.join(base, 'data');
  const sockDir = path.join(base, 'sock');
  fs.mkdirSync(sockDir);
  if (user.uid !== undefined) {
    fs.chownSync(base, user.uid, user.gid!);
    fs.chownSync(sockDir, user.uid, user.gid!);
  }
  execFileSync(path.join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
    ...user,
    stdio: 'pipe',
  });
  if (opts.hba?.length) {
    const hbaFile = path.join(dataDir, 'pg_hba.conf');
    fs.writeFileSync(hbaFile, opts.hba.map((l) => l + '\n').join('') + fs.readFileSync(hbaFile, 'utf8'));
  }
  const port = await freePort();
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: sockDir,
    wal_level: 'logical',
    max_replication_slots: 20,
    max_wal_senders: 20,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '128MB',
    max_connections: 200,
    ...opts.settings,
  };
  fs.appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    Object.entries(settings).map(([k, v]) => `${k} = '${v}'\n`).join(''),
  );
  let child: ChildProcess | undefined;
  let log = '';

  const server: PgServer = {
    port,
    dataDir,
    ...sqlAccess(port),
    async start() {
      log = '';
      child = spawn(path.join(bin, 'postgres'), ['-D', dataDir], { ...user, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.ownProcessGroup === true });
      child.stdout!.on('data', (d) => (log += d));
      child.stderr!.on('data', (d) => (log += d));
      const exited = new Promise<never>((_, reject) =>
        child!.once('exit', (code) => reject(new Error(`postgres exited with ${code}:\n${log}`))),
      );
      exited.catch(() => {});
      await Promise.race([
        exited,
        waitFor('postgres to accept connections', async () => {
          await server.sql('SELECT 1');
          return true;
        }),
      ]);
    },
    async stop(mode = 'fast') {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const done = new Promise((r) => c.once('exit', r));
      c.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
      await done;
      child = undefined;
    },
    async destroy() {
      forget();
      await server.stop('immediate');
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
  // Exiting first: immediate shutdown (SIGQUIT; the postmaster takes its backends down), files removed.
  const forget = removeOnExit(opts.ownProcessGroup, () => child, 'SIGQUIT', base);
  await server.start();
  return server;
}
