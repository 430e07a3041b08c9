/**
 * `walnats all` end to end: the real daemon publishes what Postgres commits, the gateway
 * queries and mutates Postgres directly and turns the daemon's JetStream events into
 * GraphQL subscriptions — never by polling.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { startWalnatsAll, type WalnatsAll } from '../harness/walnats-all.ts';
import type { RunHandle } from '../../src/main.ts';
import { collect, wsClient } from '../fixtures/gateway/ws.ts';

let all: WalnatsAll | undefined;
let handle: RunHandle;
let base: string;

async function gql(query: string, variables?: Record<string, unknown>) {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-walnats-admin-secret': 'e2e-secret' },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: any; errors?: Array<{ message: string }> };
}

beforeAll(async () => {
  all = await startWalnatsAll({
    db: 'e2e',
    schemaSql: `CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL);
     CREATE TABLE books (id serial PRIMARY KEY, author_id int NOT NULL REFERENCES authors, title text NOT NULL, pages int);
     INSERT INTO authors (name) VALUES ('Le Guin');
     INSERT INTO books (author_id, title, pages) VALUES (1, 'The Dispossessed', 387);`,
    adminSecret: 'e2e-secret',
    readyTimeoutMs: 30_000,
  });
  ({ handle, base } = all);
});

afterAll(() => all?.stop());

describe('walnats all', () => {
  it('answers a nested query from Postgres', async () => {
    const r = await gql('{ books { title pages author { name } } }');
    expect(r.errors).toBeUndefined();
    expect(r.data.books).toEqual([{ title: 'The Dispossessed', pages: 387, author: { name: 'Le Guin' } }]);
  });

  it('a mutation through the gateway arrives on a subscription fed by the daemon', async () => {
    const client = wsClient(`ws://127.0.0.1:${handle.httpPort}/graphql`, { headers: { 'x-walnats-admin-secret': 'e2e-secret' } });
    const sub = collect(client, 'subscription { books_events(ops: [INSERT, UPDATE]) { op new { title pages } old { title } } }');
    // The subscription's consumer exists before the write, so the event cannot be missed.
    await new Promise((r) => setTimeout(r, 300));
    const m = await gql('mutation { insert_books_one(object: {author_id: 1, title: "Lavinia", pages: 279}) { id title } }');
    expect(m.errors).toBeUndefined();
    expect(m.data.insert_books_one.title).toBe('Lavinia');
    await gql('mutation { update_books(where: {title: {_eq: "Lavinia"}}, _set: {pages: 280}) { affected_rows } }');
    await waitFor('two subscription events', async () => sub.results.length >= 2 || undefined, 20_000, 50);
    expect(sub.errors).toEqual([]);
    expect(sub.results.map((r) => r.data.books_events.op)).toEqual(['INSERT', 'UPDATE']);
    expect(sub.results[0].data.books_events.new).toEqual({ title: 'Lavinia', pages: 279 });
    expect(sub.results[1].data.books_events.new).toEqual({ title: 'Lavinia', pages: 280 });
    sub.stop();
    await client.dispose();
  });

  it('snapshot then subscribe from the query cursor: a write made after the query arrives, nothing before it repeats', async () => {
    const snap = await gql('{ authors { name } walnats_cursor }');
    expect(snap.errors).toBeUndefined();
    const cursor = snap.data.walnats_cursor;
    expect(typeof cursor).toBe('string');
    const client = wsClient(`ws://127.0.0.1:${handle.httpPort}/graphql`, { headers: { 'x-walnats-admin-secret': 'e2e-secret' } });
    const sub = collect(client, 'subscription($from: String) { authors_events(from: $from) { op new { name } } }', { from: cursor });
    await gql('mutation { insert_authors_one(object: {name: "Jemisin"}) { id } }');
    await waitFor('the post-query insert', async () => sub.results.some((r) => r.data?.authors_events.new?.name === 'Jemisin') || undefined, 20_000, 50);
    const names = sub.results.map((r) => r.data.authors_events.new?.name);
    expect(names).not.toContain('Le Guin');
    expect(names.filter((n) => n === 'Jemisin')).toHaveLength(1);
    sub.stop();
    await client.dispose();
  });

  it('a live query re-runs when the daemon reports a change to its table', async () => {
    const client = wsClient(`ws://127.0.0.1:${handle.httpPort}/graphql`, { headers: { 'x-walnats-admin-secret': 'e2e-secret' } });
    const live = collect(client, 'subscription { books(where: {pages: {_gt: 1000}}) { title } }');
    await waitFor('initial live result', async () => live.results.length >= 1 || undefined, 10_000, 50);
    expect(live.results[0].data.books).toEqual([]);
    await gql('mutation { insert_books_one(object: {author_id: 1, title: "Doorstop", pages: 1200}) { id } }');
    await waitFor('live query update', async () => live.results.some((r) => r.data.books.length === 1) || undefined, 20_000, 50);
    expect(live.results.at(-1)!.data.books).toEqual([{ title: 'Doorstop' }]);
    live.stop();
    await client.dispose();
  });
});

describe('walnats all, stopping (SIGTERM) with subscribers connected', () => {
  let other: WalnatsAll | undefined;
  afterAll(() => other?.stop());

  it('closes open subscriptions ("going away", 1001) and finishes instead of waiting for the clients to leave', async () => {
    other = await startWalnatsAll({ db: 'e2e_stop', schemaSql: 'CREATE TABLE t (id int PRIMARY KEY)', adminSecret: 'e2e-secret', readyTimeoutMs: 30_000 });
    const closes: number[] = [];
    const clients = [0, 1].map(() => wsClient(`ws://127.0.0.1:${other!.handle.httpPort}/graphql`, { headers: { 'x-walnats-admin-secret': 'e2e-secret' } }, (e) => closes.push(e.code)));
    const subs = clients.map((c) => collect(c, 'subscription { t_events { op new { id } } }'));
    // Inserts until both have seen one: a subscription's consumer starts at the next event.
    let id = 0;
    await waitFor('both subscribers live', async () => {
      if (subs.every((s) => s.results.length >= 1)) return true;
      await other!.pgs.sql('INSERT INTO t VALUES ($1)', [++id], other!.db);
      return undefined;
    }, 20_000, 300);
    // Before the fix stop() never finished while a WebSocket was open: the HTTP server's close
    // waited for upgraded sockets that nothing closed, and the gateway (which would) came after.
    const outcome = await Promise.race([
      other.handle.stop().then(() => 'stopped'),
      new Promise((r) => setTimeout(() => r('still running after 20 s'), 20_000)),
    ]);
    expect(outcome).toBe('stopped');
    await waitFor('both clients told', async () => closes.length === 2 || undefined, 5_000, 20);
    expect(closes).toEqual([1001, 1001]);
    await Promise.all(clients.map((c) => c.dispose()));
  }, 60_000);

  it('an HTTP request running when the stop comes finishes with the database (the pool closes after HTTP is drained)', async () => {
    // A validator that takes 800 ms: the request asks the pool for a connection only after it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-e2e-validators-'));
    fs.writeFileSync(path.join(dir, 't.mjs'), 'export default { async insert(row) { await new Promise((r) => setTimeout(r, 800)); return row; } };\n');
    const fourth = await startWalnatsAll({ db: 'e2e_drain', schemaSql: 'CREATE TABLE t (id int PRIMARY KEY)', adminSecret: 'e2e-secret', readyTimeoutMs: 30_000, env: { WALNATS_VALIDATORS_DIR: dir } });
    try {
      const request = fetch(`http://127.0.0.1:${fourth.handle.httpPort}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-walnats-admin-secret': 'e2e-secret' },
        body: JSON.stringify({ query: 'mutation { insert_t_one(object: {id: 7}) { id } }' }),
      }).then((r) => r.json());
      await new Promise((r) => setTimeout(r, 200));
      const stopped = fourth.handle.stop();
      expect(await request).toEqual({ data: { insert_t_one: { id: 7 } } });
      await stopped;
    } finally {
      await fourth.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a client that never answers the close handshake is cut off after a short grace, not after ws\'s 30 s', async () => {
    const third = await startWalnatsAll({ db: 'e2e_stuck', schemaSql: 'CREATE TABLE t (id int PRIMARY KEY)', adminSecret: 'e2e-secret', readyTimeoutMs: 30_000 });
    try {
      const raw = net.connect(third.handle.httpPort!, '127.0.0.1');
      const ended = new Promise<void>((r) => raw.once('close', () => r()));
      await new Promise<void>((resolve) => {
        raw.once('data', () => resolve()); // the 101; after it this client writes nothing
        raw.write(
          'GET /graphql HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n' +
            'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-protocol: graphql-transport-ws\r\n\r\n',
        );
      });
      raw.on('data', () => {}); // reads what comes (the server's close frame) and answers nothing
      const outcome = await Promise.race([
        third.handle.stop().then(() => 'stopped'),
        new Promise((r) => setTimeout(() => r('still running after 15 s'), 15_000)),
      ]);
      expect(outcome).toBe('stopped');
      await ended; // the server cut it off
    } finally {
      await third.stop();
    }
  }, 60_000);
});
