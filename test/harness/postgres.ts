/** Real Postgres for tests: local processes, or containers when WALNATS_TEST_DOCKER=1. */
import { startPostgres as startLocal, type PgServer, type PgServerOptions } from '../../src/local/postgres.ts';
export type { PgServer, PgServerOptions } from '../../src/local/postgres.ts';
export { findPgBinDir } from '../../src/local/postgres.ts';

/** With `bin` (the version matrix's embedded binaries) always a local process: a container has its own. */
export async function startPostgres(opts: PgServerOptions = {}): Promise<PgServer> {
  if (process.env.WALNATS_TEST_DOCKER === '1' && !opts.bin) {
    const { startPostgresContainer } = await import('./containers.ts');
    return startPostgresContainer(opts);
  }
  return startLocal(opts);
}
