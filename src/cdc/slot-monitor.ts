/**
 * Slot lag for metrics: how many bytes of WAL the slot holds back (current WAL position minus
 * the confirmed position), polled on a plain connection, so it is measured even when the
 * replication session is down — that is when it grows.
 */
import pg from 'pg';
import type { Logger } from 'pino';

export function startSlotMonitor(pgUrl: string, slot: string, report: (lagBytes: number, lagSeconds: number) => void, logger: Logger, everyMs = 5000): () => Promise<void> {
  let client: pg.Client | undefined;
  let stopped = false;
  const tick = async () => {
    try {
      if (!client) {
        const c = new pg.Client({ connectionString: pgUrl, application_name: 'walnats-monitor' });
        c.on('error', () => {
          client = undefined;
        });
        await c.connect();
        client = c;
      }
      // flush_lag is Postgres's own measure of how far the confirmed position trails in time;
      // NULL when the walsender is caught up (or not running, when bytes tell the story).
      const r = await client.query<{ lag: string | null; seconds: string | null }>(
        `SELECT (pg_current_wal_lsn() - s.confirmed_flush_lsn)::text AS lag,
                COALESCE(EXTRACT(epoch FROM r.flush_lag), 0)::text AS seconds
           FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
          WHERE s.slot_name = $1`,
        [slot],
      );
      if (r.rows[0]?.lag != null) report(Number(r.rows[0].lag), Number(r.rows[0].seconds ?? 0));
    } catch (err) {
      logger.debug({ err }, 'slot lag query failed');
      await client?.end().catch(() => {});
      client = undefined;
    }
  };
  const timer = setInterval(() => void tick(), everyMs);
  void tick();
  return async () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    await client?.end().catch(() => {});
  };
}
