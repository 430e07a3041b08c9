/**
 * Commit visibility. Postgres writes (and flushes) a transaction's commit record before the
 * transaction leaves the ProcArray, and only then do new snapshots see it. A walsender may
 * decode and send the commit in between — for microseconds usually, for as long as a
 * synchronous-replication wait lasts at worst. So whoever reads the database *because of* a
 * decoded change (a live query re-running on an event; a backfill chunk read after its low
 * watermark) must first wait until the commits it relies on are visible, or it reads the rows
 * as they were before them and nothing comes later to correct it.
 *
 * Both checks read the in-progress list of a fresh snapshot (`pg_snapshot_xip`, Postgres 13+);
 * a transaction that has left it stays visible to every later snapshot.
 */

export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

export interface VisibilityWait {
  /** Give up after this long (default: never). */
  timeoutMs?: number;
  /** Called every `reportEveryMs` (default 10 s) while still waiting, with what is waited for. */
  onSlow?: (waitingFor: string[], waitedMs: number) => void;
  reportEveryMs?: number;
  /** Stop waiting (returns false) once this says so, e.g. the subscriber went away. */
  cancelled?: () => boolean;
}

/**
 * xids of the list (32-bit, as pgoutput sends them) that a new snapshot does not see yet:
 * listed in its in-progress set, or at/after its xmax (the newest transactions). Each is
 * widened to the full xid nearest the snapshot's xmax.
 */
const STILL_INVISIBLE_SQL =
  `WITH s AS (SELECT pg_current_snapshot() AS snap), m AS (SELECT snap, pg_snapshot_xmax(snap)::text::bigint AS xmax FROM s) ` +
  `SELECT x::text AS xid FROM m, unnest($1::bigint[]) AS x ` +
  `WHERE NOT pg_visible_in_snapshot((m.xmax + ((x - m.xmax % 4294967296 + 2147483648 + 8589934592) % 4294967296) - 2147483648)::text::xid8, m.snap)`;

/**
 * xids of transactions that have committed locally but wait for a synchronous standby: they
 * stay in the ProcArray (invisible) until the wait ends. (`pg_xact_status` cannot tell: it
 * says "in progress" while the ProcArray holds them.) Other roles' sessions show a NULL
 * backend_xid unless walnats' role has pg_read_all_stats (or is a superuser).
 */
const COMMITTED_INVISIBLE_SQL =
  `SELECT backend_xid::text AS xid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND backend_xid IS NOT NULL`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stillInvisible(db: Queryable, xids: string[]): Promise<string[]> {
  // One text row per xid: callers' connections may parse arrays differently (or not at all).
  const r = await db.query<{ xid: string }>(STILL_INVISIBLE_SQL, [xids]);
  return r.rows.map((row) => String(row.xid));
}

/**
 * Waits until every transaction in `xids` (decoded from the WAL, so committed) is visible to
 * new snapshots. Returns false when it gave up (timeout or cancelled), true otherwise.
 */
export async function waitUntilVisible(db: Queryable, xids: Iterable<bigint | number | string>, opts: VisibilityWait = {}): Promise<boolean> {
  let pending = [...new Set([...xids].map((x) => String(BigInt(x) % 4294967296n)))];
  if (pending.length === 0) return true;
  const started = Date.now();
  let reported = started;
  let pause = 1;
  for (;;) {
    const left = await stillInvisible(db, pending);
    if (left.length === 0) return true;
    pending = left;
    const now = Date.now();
    if (opts.cancelled?.()) return false;
    if (opts.timeoutMs !== undefined && now - started >= opts.timeoutMs) return false;
    if (opts.onSlow && now - reported >= (opts.reportEveryMs ?? 10_000)) {
      reported = now;
      opts.onSlow(pending, now - started);
    }
    await sleep(pause);
    pause = Math.min(pause * 2, 50);
  }
}

/**
 * Waits until no transaction whose commit is already written is still invisible to new
 * snapshots because it waits for a synchronous standby: every such commit is then seen by any
 * snapshot taken after this returns. (The other window, a backend between flushing its commit
 * record and leaving the ProcArray, lasts microseconds and is not observable from SQL.)
 */
export async function waitForCommittedInvisible(db: Queryable, opts: VisibilityWait = {}): Promise<boolean> {
  const r = await db.query<{ xid: string }>(COMMITTED_INVISIBLE_SQL);
  return waitUntilVisible(db, r.rows.map((row) => String(row.xid)), opts);
}
