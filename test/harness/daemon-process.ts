/** `walnats cdc` as a real child process, so that tests can SIGKILL it and read its memory. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/walnats.js');

export interface DaemonProcess {
  readonly pid: number;
  readonly log: () => string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  /** Peak resident set size so far, in bytes (Linux VmHWM). */
  peakRss(): number;
  exited: Promise<number | null>;
}

/** `bin` replaces bin/walnats.js (another build); `nodeArgs` go to node before it (e.g. --cpu-prof). */
export function spawnDaemon(env: Record<string, string>, command = 'cdc', opts: { bin?: string; nodeArgs?: string[] } = {}): DaemonProcess {
  let log = '';
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), opts.bin ?? BIN, command], {
    env: { ...process.env, WALNATS_HTTP_PORT: '0', WALNATS_LOG_LEVEL: 'info', WALNATS_LOG_PRETTY: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    pid: child.pid!,
    log: () => log,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    peakRss() {
      try {
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const m = /VmHWM:\s+(\d+) kB/.exec(status);
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0;
      }
    },
    exited,
  };
}
