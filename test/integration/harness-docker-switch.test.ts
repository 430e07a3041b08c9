import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { startPostgres } from '../harness/postgres.ts';

function dockerEngineAvailable(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

describe('WALNATS_TEST_DOCKER switch', () => {
  const saved = process.env.WALNATS_TEST_DOCKER;
  afterEach(() => {
    if (saved === undefined) delete process.env.WALNATS_TEST_DOCKER;
    else process.env.WALNATS_TEST_DOCKER = saved;
  });
  it.runIf(!dockerEngineAvailable())('without a Docker engine it fails clearly instead of quietly using local servers', async () => {
    process.env.WALNATS_TEST_DOCKER = '1';
    await expect(startPostgres()).rejects.toThrow(/container runtime|docker/i);
  });
  it.runIf(dockerEngineAvailable())('with a Docker engine it starts Postgres in a container with logical decoding', async () => {
    process.env.WALNATS_TEST_DOCKER = '1';
    const pgs = await startPostgres();
    try {
      expect((await pgs.sql<{ wal_level: string }>('SHOW wal_level'))[0].wal_level).toBe('logical');
    } finally {
      await pgs.destroy();
    }
  }, 120_000);
});
