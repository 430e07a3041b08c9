/**
 * A real nats-server with JetStream (for `walnats demo` and the tests), on a free port with its store in a temporary
 * directory. It can be stopped and started again on the same port and store, for outage tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './ports.ts';
import { removeOnExit } from './owned-child.ts';

export interface NatsServer {
  readonly port: number;
  readonly url: string;
  readonly storeDir: string;
  /** Process id of the running server (undefined while stopped). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing (a stalled broker). */
  pause(): void;
  resume(): void;
  destroy(): Promise<void>;
}

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('INFO'));
    });
    s.once('error', () => resolve(false));
  });
}

export interface NatsProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr). */
  log(): string;
  /** Resolves once the server answers on its client port; rejects with its log when it exits first. */
  readonly ready: Promise<void>;
}

/** Spawns nats-server (`$WALNATS_NATS_SERVER` or the one on PATH) with `args`, listening on `port`. */
export function spawnNatsServer(args: string[], port: number, label = 'nats-server', detached = false): NatsProcess {
  let log = '';
  const child = spawn(process.env.WALNATS_NATS_SERVER ?? 'nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'], detached });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${label} exited with ${code}:\n${log}`))));
  exited.catch(() => {});
  const ready = Promise.race([exited, waitFor(`${label} to listen`, async () => (await probe(port)) || undefined)]).then(() => {});
  return { child, log: () => log, ready };
}

export interface StartNatsOptions {
  /** As PgServerOptions.ownProcessGroup: its own process group, killed and removed when this process exits first. */
  ownProcessGroup?: boolean;
}

export async function startNats(extraArgs: string[] = [], opts: StartNatsOptions = {}): Promise<NatsServer> {
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const server: NatsServer = {
    port,
    url: `nats://127.0.0.1:${port}`,
    storeDir,
    get pid() {
      return child?.exitCode === null ? child.pid : undefined;
    },
    async start() {
      const p = spawnNatsServer(['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port), ...extraArgs], port, 'nats-server', opts.ownProcessGroup === true);
      child = p.child;
      await p.ready;
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const done = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await done;
      child = undefined;
    },
    async destroy() {
      forget();
      const c = child;
      if (c && c.exitCode === null) {
        const done = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await done;
      }
      fs.rmSync(storeDir, { recursive: true, force: true });
    },
  };
  const forget = removeOnExit(opts.ownProcessGroup, () => child, 'SIGKILL', storeDir);
  await server.start();
  return server;
}
