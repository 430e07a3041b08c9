/**
 * Fault soak: repeats each fault scenario N times against real processes — `walnats cdc` as a
 * child process, a real Postgres, a real nats-server (and a 3-node JetStream cluster) — and
 * counts, with the stream read back, how many committed changes were lost, duplicated or
 * out of order. Prints a table (and `--json` the raw figures). Exit code 1 when anything was
 * lost, duplicated or reordered.
 *
 *   npx tsx scripts/fault-soak.ts                 # 3 rounds of every scenario (~5 min)
 *   npx tsx scripts/fault-soak.ts --rounds 10 --only kill9,nats-node
 *
 * Each round: a fresh database and slot, a daemon, a load of `TXNS` transactions of `ROWS`
 * inserts + 1 update, the fault injected once in the middle of the load while the daemon is
 * publishing, then every change compared with what the stream holds.
 */
import pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startPostgres, type PgServer } from '../src/local/postgres.ts';
import { startNats, type NatsServer } from '../src/local/nats.ts';
import { startNatsCluster, type NatsCluster } from '../src/local/nats-cluster.ts';
import { waitFor } from '../src/local/ports.ts';
import { connectNats } from '../src/nats-connection.ts';
import { defaultStreamName } from '../src/events/subject.ts';
import { spawnDaemon, type DaemonProcess } from '../test/harness/daemon-process.ts';
import { readStream, streamLastSeq, type StoredEvent } from '../test/harness/stream.ts';

const TXNS = 60;
const ROWS = 20;
const FAULT_AT = 20;
const FAULT_END = 40;

interface Env {
  pgs: PgServer;
  nats: NatsServer;
  cluster?: NatsCluster;
  nc: NatsConnection;
  clusterNc?: NatsConnection;
}

interface Scenario {
  name: string;
  what: string;
  cluster?: boolean;
  daemonEnv?: Record<string, string>;
  /** Called after transaction FAULT_AT; `restart` replaces the daemon; may return a function run after FAULT_END. */
  inject(ctx: RoundContext): Promise<(() => Promise<void>) | void>;
  /** The load's connection does not survive the fault. */
  reconnectLoad?: boolean;
}

interface RoundContext {
  env: Env;
  db: string;
  stream: string;
  daemon: () => DaemonProcess;
  restart: () => Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SCENARIOS: Scenario[] = [
  {
    name: 'kill9',
    what: 'kill -9 of the daemon mid-load, restarted at once',
    async inject(ctx) {
      await ctx.daemon().kill('SIGKILL');
      await ctx.restart();
    },
  },
  {
    name: 'nats-node',
    what: 'stream leader of a 3-node JetStream cluster (R3) killed mid-load, back later',
    cluster: true,
    daemonEnv: { WALNATS_STREAM_REPLICAS: '3', WALNATS_PUBLISH_ACK_TIMEOUT: '5s' },
    async inject(ctx) {
      const jsm = await jetstreamManager(ctx.env.clusterNc!, { checkAPI: false });
      const leader = await waitFor('stream leader', async () => (await jsm.streams.info(ctx.stream)).cluster?.leader || undefined, 30_000, 250);
      const node = ctx.env.cluster!.node(leader);
      await node.kill();
      return async () => {
        await node.start();
      };
    },
  },
  {
    name: 'nats-down',
    what: 'NATS stopped for 4 s, beyond a 1 s duplicate window',
    daemonEnv: { WALNATS_STREAM_DUPLICATE_WINDOW: '1s', WALNATS_PUBLISH_ACK_TIMEOUT: '2s' },
    async inject(ctx) {
      const since = Date.now();
      await ctx.env.nats.stop();
      return async () => {
        await sleep(Math.max(0, 4000 - (Date.now() - since)));
        await ctx.env.nats.start();
      };
    },
  },
  {
    name: 'pg-restart',
    what: 'Postgres restarted (fast shutdown) mid-load',
    reconnectLoad: true,
    async inject(ctx) {
      await ctx.env.pgs.stop('fast');
      await ctx.env.pgs.start();
    },
  },
  {
    name: 'walsender',
    what: 'walsender terminated (pg_terminate_backend) mid-load',
    async inject(ctx) {
      await ctx.env.pgs.sql('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [ctx.db]);
    },
  },
  {
    name: 'stall',
    what: 'NATS frozen (SIGSTOP) for 6 s, wal_sender_timeout 2 s',
    daemonEnv: { WALNATS_PUBLISH_ACK_TIMEOUT: '60s', WALNATS_PUBLISH_WINDOW: '256' },
    async inject(ctx) {
      const since = Date.now();
      ctx.env.nats.pause();
      return async () => {
        await sleep(Math.max(0, 6000 - (Date.now() - since)));
        ctx.env.nats.resume();
      };
    },
  },
];

interface Expected {
  key: string;
}

interface RoundResult {
  expected: number;
  stored: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  duplicateIds: number;
  catchUpMs: number;
  daemonRestarts: number;
  sessionsFailed: number;
  /** Messages in the stream and changes committed when the fault hit (proof it hit mid-load). */
  atFault: { stored: number; committed: number };
  /** Why sessions failed (error messages from the daemons' logs). */
  failures: string[];
}

function changeKey(e: StoredEvent): string | undefined {
  const b = e.body;
  if (b?.source?.table !== 'ledger' || !(b.op === 'c' || b.op === 'u' || b.op === 'd')) return undefined;
  const row = b.after ?? b.before;
  return `${b.op}:${row.id}:${b.after ? b.after.v : ''}`;
}

/** Lost, duplicated and reordered changes of the stream against the expected list. */
export function compare(expected: Expected[], events: StoredEvent[]): Omit<RoundResult, 'catchUpMs' | 'daemonRestarts' | 'sessionsFailed' | 'atFault' | 'failures'> {
  const want = new Map<string, number>();
  expected.forEach((e, i) => want.set(e.key, i));
  const got = new Map<string, number>();
  const ids = new Set<string>();
  let duplicateIds = 0;
  let outOfOrder = 0;
  let lastIndex = -1;
  let stored = 0;
  for (const e of events) {
    const id = e.headers['Nats-Msg-Id'];
    if (ids.has(id)) duplicateIds++;
    ids.add(id);
    const k = changeKey(e);
    if (!k) continue;
    stored++;
    got.set(k, (got.get(k) ?? 0) + 1);
    const i = want.get(k);
    if (i === undefined) continue;
    if (got.get(k) === 1) {
      if (i < lastIndex) outOfOrder++;
      lastIndex = Math.max(lastIndex, i);
    }
  }
  let lost = 0;
  let duplicated = 0;
  for (const e of expected) {
    const n = got.get(e.key) ?? 0;
    if (n === 0) lost++;
    if (n > 1) duplicated += n - 1;
  }
  for (const [k, n] of got) if (!want.has(k)) duplicated += n; // a change nobody committed
  return { expected: expected.length, stored, lost, duplicated, outOfOrder, duplicateIds };
}

async function runRound(env: Env, sc: Scenario, round: number): Promise<RoundResult> {
  const { pgs } = env;
  const db = await pgs.createDatabase(`soak_${sc.name.replace(/-/g, '_')}_${round}`);
  await pgs.sql('CREATE TABLE ledger (id bigint PRIMARY KEY, v int, pad text)', [], db);
  const stream = defaultStreamName('walnats', db);
  const natsUrl = sc.cluster ? env.cluster!.urls.join(',') : env.nats.url;
  const nc = sc.cluster ? env.clusterNc! : env.nc;
  const daemons: DaemonProcess[] = [];
  const spawn = async () => {
    const d = spawnDaemon({
      WALNATS_PG_URL: pgs.url(db),
      WALNATS_NATS_URL: natsUrl,
      WALNATS_SLOT: db,
      WALNATS_STATUS_INTERVAL: '200ms',
      ...sc.daemonEnv,
    });
    daemons.push(d);
    return d;
  };
  const first = await spawn();
  await waitFor('daemon streaming', async () => /streaming changes/.test(first.log()) || undefined, 60_000, 100);

  const expected: Expected[] = [];
  let client: pg.Client | undefined;
  const connect = async () => {
    await client?.end().catch(() => {});
    client = new pg.Client({ connectionString: pgs.url(db) });
    client.on('error', () => {});
    await waitFor('load connection', async () => {
      await client!.connect().catch(async (e) => {
        client = new pg.Client({ connectionString: pgs.url(db) });
        client.on('error', () => {});
        throw e;
      });
      return true;
    }, 30_000, 200);
  };
  await connect();
  let after: (() => Promise<void>) | void = undefined;
  const atFault = { stored: 0, committed: 0 };
  try {
    let id = 0;
    for (let t = 0; t < TXNS; t++) {
      const firstId = id + 1;
      id += ROWS;
      await client!.query('BEGIN');
      await client!.query(`INSERT INTO ledger SELECT g, 0, repeat('x', 60) FROM generate_series($1::bigint, $2::bigint) g`, [firstId, id]);
      await client!.query('UPDATE ledger SET v = v + 1 WHERE id = $1', [firstId]);
      await client!.query('COMMIT');
      for (let k = firstId; k <= id; k++) expected.push({ key: `c:${k}:0` });
      expected.push({ key: `u:${firstId}:1` });
      if (t === FAULT_AT) {
        // Fault while the daemon is busy: let it get some of the load first.
        atFault.committed = expected.length;
        atFault.stored = await streamLastSeq(nc, stream).catch(() => -1);
        after = await sc.inject({
          env,
          db,
          stream,
          daemon: () => daemons[daemons.length - 1],
          restart: async () => void (await spawn()),
        });
        if (sc.reconnectLoad) await connect();
      }
      if (t === FAULT_END && after) {
        await after();
        after = undefined;
      }
    }
  } finally {
    if (after) await after();
    await client?.end().catch(() => {});
  }

  const loadDone = Date.now();
  let events: StoredEvent[] = [];
  let stable = 0;
  let last = -1;
  // Wait for every change; give up when nothing new arrives for 30 s (then count what is missing).
  for (;;) {
    try {
      events = await readStream(nc, stream);
    } catch {
      /* JetStream may not answer right after a fault */
    }
    const n = events.filter((e) => changeKey(e)).length;
    if (n >= expected.length) break;
    if (n === last) stable++;
    else stable = 0;
    last = n;
    if (stable >= 60) break;
    await sleep(500);
  }
  const catchUpMs = Date.now() - loadDone;
  await sleep(1000); // anything late (a duplicate) would show now
  events = await readStream(nc, stream);
  const failures: string[] = [];
  for (const d of daemons) {
    for (const line of d.log().split('\n')) {
      if (!line.includes('replication session failed')) continue;
      try {
        const j = JSON.parse(line) as { err?: { message?: string; cause?: { message?: string } } };
        failures.push([j.err?.message, j.err?.cause?.message].filter(Boolean).join(': '));
      } catch {
        failures.push(line.slice(0, 200));
      }
    }
  }
  const sessionsFailed = failures.length;
  await Promise.all(daemons.map((d) => d.kill('SIGKILL')));
  await pgs.sql('SELECT pg_drop_replication_slot($1)', [db]).catch(() => {});
  await pgs.sql(`DROP DATABASE "${db}" WITH (FORCE)`).catch(() => {});
  await jetstreamManager(nc).then((jsm) => jsm.streams.delete(stream)).catch(() => {});
  return { ...compare(expected, events), catchUpMs, daemonRestarts: daemons.length - 1, sessionsFailed, atFault, failures };
}

function parseArgs(argv: string[]) {
  let rounds = 3;
  let only: string[] | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') rounds = Number(argv[++i]);
    else if (a.startsWith('--rounds=')) rounds = Number(a.slice(9));
    else if (a === '--only') only = argv[++i].split(',');
    else if (a.startsWith('--only=')) only = a.slice(7).split(',');
    else if (a === '--json') json = true;
    else throw new Error(`unknown argument ${a} (use --rounds N, --only a,b, --json)`);
  }
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');
  const unknown = (only ?? []).filter((o) => !SCENARIOS.some((s) => s.name === o));
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  return { rounds, scenarios: SCENARIOS.filter((s) => !only || only.includes(s.name)), json };
}

async function main() {
  const { rounds, scenarios, json } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const [pgs, nats, cluster] = await Promise.all([
    startPostgres({ settings: { wal_sender_timeout: '2s' } }),
    startNats(),
    scenarios.some((s) => s.cluster) ? startNatsCluster(3) : Promise.resolve(undefined),
  ]);
  const nc = await connectNats({ natsUrl: [nats.url] }, 'fault-soak');
  const clusterNc = cluster ? await connectNats({ natsUrl: cluster.urls }, 'fault-soak-cluster') : undefined;
  const env: Env = { pgs, nats, cluster, nc, clusterNc };
  const results: Array<{ scenario: string; what: string; rounds: RoundResult[] }> = [];
  try {
    for (const sc of scenarios) {
      const rs: RoundResult[] = [];
      for (let r = 1; r <= rounds; r++) {
        const res = await runRound(env, sc, r);
        rs.push(res);
        process.stderr.write(
          `${sc.name} round ${r}/${rounds}: fault with ${res.atFault.stored}/${res.atFault.committed} stored, then ${res.stored}/${res.expected} stored, lost ${res.lost}, duplicated ${res.duplicated}, ` +
            `out of order ${res.outOfOrder}, caught up ${(res.catchUpMs / 1000).toFixed(1)} s after the load, ` +
            `${res.sessionsFailed} failed sessions${res.failures.length ? ` (${[...new Set(res.failures)].join('; ')})` : ''}\n`,
        );
      }
      results.push({ scenario: sc.name, what: sc.what, rounds: rs });
    }
  } finally {
    await nc.close().catch(() => {});
    await clusterNc?.close().catch(() => {});
    await Promise.all([pgs.destroy(), nats.destroy(), cluster?.destroy()]);
  }

  const sum = (rs: RoundResult[], k: Exclude<keyof RoundResult, 'atFault' | 'failures'>) => rs.reduce((s, r) => s + r[k], 0);
  const rows = results.map(({ scenario, what, rounds: rs }) => ({
    scenario,
    what,
    faults: rs.length,
    changes: sum(rs, 'expected'),
    lost: sum(rs, 'lost'),
    duplicated: sum(rs, 'duplicated') + sum(rs, 'duplicateIds'),
    outOfOrder: sum(rs, 'outOfOrder'),
    sessionsFailed: sum(rs, 'sessionsFailed'),
    maxCatchUpS: Math.max(...rs.map((r) => r.catchUpMs)) / 1000,
  }));
  if (json) {
    process.stdout.write(JSON.stringify({ rounds, seconds: (Date.now() - started) / 1000, rows, results }, null, 2) + '\n');
  } else {
    const head = ['scenario', 'faults', 'changes', 'lost', 'duplicated', 'out of order', 'failed sessions', 'max catch-up (s)'];
    const lines = rows.map((r) => [r.scenario, r.faults, r.changes, r.lost, r.duplicated, r.outOfOrder, r.sessionsFailed, r.maxCatchUpS.toFixed(1)].map(String));
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const fmt = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
    process.stdout.write([fmt(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...lines.map(fmt)].join('\n') + '\n');
    process.stdout.write(`\n${rounds} round(s) per scenario, ${TXNS} transactions × (${ROWS} inserts + 1 update) each, in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    for (const r of rows) process.stdout.write(`  ${r.scenario}: ${r.what}\n`);
  }
  const bad = rows.some((r) => r.lost || r.duplicated || r.outOfOrder);
  process.exitCode = bad ? 1 : 0;
}

main().catch((err) => {
  process.stderr.write(`fault-soak: ${(err as Error).stack ?? err}\n`);
  process.exit(2);
});
