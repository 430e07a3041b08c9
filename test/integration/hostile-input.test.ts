/**
 * Hostile input through the whole daemon: schemas, tables and columns named with every
 * special character (test/fixtures/hostile/names.ts), and values at the edges of every type
 * (test/fixtures/hostile/values.ts). Each change gives its event — a subject that decodes back
 * to the names, the values DESIGN's table promises — and nothing is dropped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { readStream, waitForSubject, type StoredEvent } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { expectCleanStream } from '../harness/verify.ts';
import { escapeToken, parseSubject } from '../../src/events/subject.ts';
import { HOSTILE_NAMES, TRUNCATED_NAMES, ident } from '../fixtures/hostile/names.ts';
import { VALUE_CASES } from '../fixtures/hostile/values.ts';

let pgs: PgServer;
let nats: NatsServer;

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
});
afterAll(async () => {
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

async function daemonFor(db: string): Promise<TestDaemon> {
  const td = await startTestDaemon(pgs.url(db), nats.url, db, { slot: db });
  await waitFor('daemon streaming', async () => td.daemon.ready() || undefined, 30_000);
  return td;
}

/** Writes a marker row last, waits for its event, and returns everything in the stream. */
async function everything(td: TestDaemon, db: string): Promise<StoredEvent[]> {
  await pgs.sql('INSERT INTO zz_done VALUES (1)', [], db);
  await waitForSubject(td.nc, td.stream, `walnats.${escapeToken(db)}.public.zz_done.insert`, 1, 60_000);
  return readStream(td.nc, td.stream);
}

const TOKEN = /^[A-Za-z0-9_%-]+$/;

describe('hostile identifiers', () => {
  it('every hostile table, column and schema name gives a valid subject that decodes back, and the row under its own column name', async () => {
    const db = await pgs.createDatabase('names');
    const ddl: string[] = ['CREATE TABLE zz_done (id int PRIMARY KEY)'];
    HOSTILE_NAMES.forEach((n) => ddl.push(`CREATE TABLE public.${ident(n)} (id int PRIMARY KEY, ${ident(n)} text)`));
    // A few hostile schemas too, holding hostile tables.
    const schemas = ['my schema.😀*>%', 'select', '$schema', 'x'.repeat(63)];
    schemas.forEach((s) => ddl.push(`CREATE SCHEMA ${ident(s)}; CREATE TABLE ${ident(s)}.${ident('order')} (${ident('user')} int PRIMARY KEY, ${ident('we"ird.col')} text)`));
    await pgs.sql(ddl.join(';\n'), [], db);
    const td = await daemonFor(db);
    try {
      const literal = (v: string) => `'${v.replace(/'/g, "''")}'`;
      await pgs.sql(HOSTILE_NAMES.map((n, i) => `INSERT INTO public.${ident(n)} VALUES (${i}, ${literal(n)})`).join(';\n'), [], db);
      for (const s of schemas) await pgs.sql(`INSERT INTO ${ident(s)}.${ident('order')} VALUES (7, $1)`, [s], db);
      const events = await everything(td, db);
      expectCleanStream(events);
      const rows = events.filter((e) => e.body.op === 'c' && e.body.source.table !== 'zz_done');
      expect(rows).toHaveLength(HOSTILE_NAMES.length + schemas.length);
      const seen = new Map<string, StoredEvent>();
      for (const e of rows) {
        const tokens = e.subject.split('.');
        expect(tokens, e.subject).toHaveLength(5);
        for (const t of tokens) expect(t, e.subject).toMatch(TOKEN);
        const parsed = parseSubject('walnats', e.subject);
        expect(parsed, e.subject).toMatchObject({ kind: 'table', db, schema: e.body.source.schema, table: e.body.source.table, op: 'insert' });
        seen.set(`${e.body.source.schema}\u0000${e.body.source.table}`, e);
      }
      HOSTILE_NAMES.forEach((n, i) => {
        const e = seen.get(`public\u0000${n}`);
        expect(e, `no event for table ${JSON.stringify(n)}`).toBeDefined();
        expect(e!.body.after).toEqual({ id: i, [n]: n });
      });
      for (const s of schemas) {
        const e = seen.get(`${s}\u0000order`);
        expect(e, `no event for schema ${JSON.stringify(s)}`).toBeDefined();
        expect(e!.body.after).toEqual({ user: 7, 'we"ird.col': s });
      }
      // Tables named like reserved subjects stay table subjects (escaped `$`), never reserved ones.
      const reserved = events.filter((e) => e.subject.split('.')[2].startsWith('$'));
      for (const e of reserved) expect(e.subject.split('.')[2], e.subject).toMatch(/^\$(schema|message|tx|heartbeat|deadletter)$/);
      expect(seen.get('public\u0000$schema')!.subject).toBe(`walnats.${escapeToken(db)}.public.%24schema.insert`);
    } finally {
      await td.stop();
    }
  });

  it('names longer than 63 bytes arrive as Postgres truncated them', async () => {
    const db = await pgs.createDatabase('trunc');
    await pgs.sql(['CREATE TABLE zz_done (id int PRIMARY KEY)', ...TRUNCATED_NAMES.map(([n]) => `CREATE TABLE ${ident(n)} (${ident(n + 'col')} int PRIMARY KEY)`)].join(';'), [], db);
    const td = await daemonFor(db);
    try {
      for (const [n] of TRUNCATED_NAMES) await pgs.sql(`INSERT INTO ${ident(n)} VALUES (1)`, [], db);
      const rows = (await everything(td, db)).filter((e) => e.body.op === 'c' && e.body.source.table !== 'zz_done');
      expect(rows.map((e) => e.body.source.table)).toEqual(TRUNCATED_NAMES.map(([, kept]) => kept));
      for (const e of rows) {
        expect(parseSubject('walnats', e.subject)).toMatchObject({ table: e.body.source.table });
        expect(Buffer.byteLength(Object.keys(e.body.after)[0])).toBeLessThanOrEqual(63);
      }
    } finally {
      await td.stop();
    }
  });
});

describe('hostile values', () => {
  it('values at the edges of every type arrive as DESIGN says, one event per row, none dropped', async () => {
    const db = await pgs.createDatabase('edges');
    const cols = VALUE_CASES.map((c, i) => `c${i} ${c.type}`).join(', ');
    await pgs.sql(`CREATE TABLE zz_done (id int PRIMARY KEY); CREATE TABLE edges (id int PRIMARY KEY, ${cols})`, [], db);
    const td = await daemonFor(db);
    try {
      for (let i = 0; i < VALUE_CASES.length; i++) {
        const c = VALUE_CASES[i];
        await pgs.sql(`INSERT INTO edges (id, c${i}) VALUES (${i}, ${c.sql})`, c.params, db);
      }
      const events = (await everything(td, db)).filter((e) => e.body.op === 'c' && e.body.source?.table === 'edges');
      expect(events).toHaveLength(VALUE_CASES.length);
      for (let i = 0; i < VALUE_CASES.length; i++) {
        const c = VALUE_CASES[i];
        const what = `${c.type} ${c.sql.slice(0, 60)}`;
        const raw = events[i].raw;
        expect(() => JSON.parse(raw), what).not.toThrow();
        expect(events[i].body.after.id, what).toBe(i);
        if (c.json !== undefined) {
          const start = raw.indexOf(`"c${i}":`) + `"c${i}":`.length;
          const next = raw.indexOf(`,"c${i + 1}":`, start);
          const fragment = raw.slice(start, next >= 0 ? next : raw.indexOf('},"source"', start));
          if (fragment !== c.json) expect(fragment.length > 200 ? `${fragment.slice(0, 100)}…(${fragment.length})` : fragment, what).toBe(c.json.length > 200 ? `${c.json.slice(0, 100)}…(${c.json.length})` : c.json);
          expect(fragment, what).toBe(c.json);
        }
        if ('value' in c) expect(events[i].body.after[`c${i}`], what).toEqual(c.value);
      }
    } finally {
      await td.stop();
    }
  });
});
