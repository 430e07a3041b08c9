import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';

describe('test harness', () => {
  let pgs: PgServer;
  let nats: NatsServer;
  beforeAll(async () => {
    [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  });
  afterAll(async () => {
    await Promise.all([pgs?.destroy(), nats?.destroy()]);
  });
  it('starts Postgres with logical decoding enabled', async () => {
    const [row] = await pgs.sql<{ wal_level: string }>('SHOW wal_level');
    expect(row.wal_level).toBe('logical');
  });
  it('restarts Postgres on the same port', async () => {
    await pgs.stop();
    await pgs.start();
    const [row] = await pgs.sql<{ one: number }>('SELECT 1 AS one');
    expect(row.one).toBe(1);
  });
  it('starts nats-server on a free port', () => {
    expect(nats.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
  });
});
