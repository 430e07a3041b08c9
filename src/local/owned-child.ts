/**
 * Local servers that belong to this process (`walnats demo`): started in a process group of
 * their own, so that a terminal's Ctrl-C (SIGINT to the whole foreground group) reaches only
 * walnats, which then stops its own work first and the servers after it (otherwise Postgres
 * shut down at the same moment and every open connection of walnats failed while it was still
 * draining). Since they no longer share the group's signals, they are stopped when this
 * process exits by any other way (a second Ctrl-C, an uncaught error): the hooks run
 * synchronously from the 'exit' event and must only signal and remove files.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';

const hooks = new Set<() => void>();
let installed = false;

/** Runs \`fn\` when this process exits, until the returned function is called. */
export function onProcessExit(fn: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const h of [...hooks]) {
        try {
          h();
        } catch {
          /* exiting: nothing left to report to */
        }
      }
    });
  }
  hooks.add(fn);
  return () => void hooks.delete(fn);
}

/**
 * For a local server started with `ownProcessGroup`: on this process's exit, `signal` to its
 * current process and its directory removed. Returns the function that cancels that (call it
 * from the server's own destroy()); without `owned`, nothing is registered.
 */
export function removeOnExit(owned: boolean | undefined, child: () => ChildProcess | undefined, signal: NodeJS.Signals, dir: string): () => void {
  if (!owned) return () => {};
  return onProcessExit(() => {
    const c = child();
    if (c && c.exitCode === null) c.kill(signal);
    fs.rmSync(dir, { recursive: true, force: true });
  });
}
