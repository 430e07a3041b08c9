/**
 * The CDC daemon's leader lock: one active instance per slot. It is the session advisory
 * lock `pg_try_advisory_lock(hashtext('walnats'), hashtext(<slot>))`, held on the daemon's
 * catalog connection; the daemon takes it, `walnats status` reports who holds it.
 */
import type pg from 'pg';

/** The two keys of the lock, `$1` being the slot name: `pg_try_advisory_lock(${LEADER_LOCK_ARGS})`. */
export const LEADER_LOCK_ARGS = `hashtext('walnats'), hashtext($1)`;

export interface LeaderLockHolder {
  /** Backend pid of the holder's connection. */
  pid: number;
  /** Its application_name (`walnats-cdc@<host>:<pid>`). */
  name: string;
  addr: string | null;
}

/**
 * The backend holding the lock of `slot`, or null. pg_locks shows the two int4 keys of a
 * two-key advisory lock as classid/objid (oids, so unsigned) with objsubid 2.
 */
export async function leaderLockHolder(db: pg.ClientBase, slot: string): Promise<LeaderLockHolder | null> {
  const r = await db.query<LeaderLockHolder>(
    `SELECT a.pid, a.application_name AS name, a.client_addr::text AS addr
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid::bigint = (hashtext('walnats')::bigint + 4294967296) % 4294967296
        AND l.objid::bigint = (hashtext($1)::bigint + 4294967296) % 4294967296`,
    [slot],
  );
  return r.rows[0] ?? null;
}
