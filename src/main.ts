/**
 * The one place that wires everything: configuration → connections → CDC daemon, gateway,
 * HTTP server, shutdown. The CLI calls these entry points.
 */
import type { WalnatsConfig } from './config.ts';

export interface RunHandle {
  /** Resolves when the process should exit (after SIGTERM/SIGINT and a graceful drain). */
  done: Promise<void>;
  stop(): Promise<void>;
}

// Entry points are filled in as the pipeline lands; until then they refuse clearly.
export async function runCdc(_config: WalnatsConfig): Promise<RunHandle> {
  throw new Error('walnats cdc: not available in this build yet');
}
export async function runGateway(_config: WalnatsConfig): Promise<RunHandle> {
  throw new Error('walnats gateway: not available in this build yet');
}
export async function runAll(_config: WalnatsConfig): Promise<RunHandle> {
  throw new Error('walnats all: not available in this build yet');
}
