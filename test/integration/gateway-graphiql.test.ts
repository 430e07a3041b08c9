/**
 * GraphiQL in a real browser (Debian's headless `chromium`, driven by playwright-core)
 * against `walnats all` with the real CDC daemon: the page and its assets come from the
 * gateway alone (no CDN), a query typed into GraphiQL shows its result, and a subscription
 * run from GraphiQL shows the event of a row inserted in Postgres.
 *
 * Skips, saying why, where /usr/bin/chromium or playwright-core is missing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { startWalnatsAll, type WalnatsAll } from '../harness/walnats-all.ts';
import type { PgServer } from '../harness/postgres.ts';
import type { RunHandle } from '../../src/main.ts';

const CHROMIUM = '/usr/bin/chromium';
const SECRET = 'graphiql-secret';

// playwright-core is loaded by name so that the typecheck does not depend on it.
type Browser = any;
type Page = any;
async function loadPlaywright(): Promise<{ chromium: any } | null> {
  const name = 'playwright-core';
  try {
    return (await import(name)) as { chromium: any };
  } catch {
    return null;
  }
}
const playwright = await loadPlaywright();
const skipReason = !fs.existsSync(CHROMIUM)
  ? `${CHROMIUM} is absent (apt-get install chromium)`
  : !playwright
    ? 'playwright-core is not installed (npm install -D playwright-core)'
    : '';
if (skipReason) console.warn(`gateway-graphiql browser test skipped: ${skipReason}`);

let all: WalnatsAll | undefined;
let pgs: PgServer;
let handle: RunHandle;
let base: string;
let db: string;

beforeAll(async () => {
  all = await startWalnatsAll({
    db: 'giql',
    schemaSql: `CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL); INSERT INTO authors (name) VALUES ('Le Guin');`,
    adminSecret: SECRET,
  });
  ({ pgs, handle, base, db } = all);
}, 120_000);

afterAll(() => all?.stop());

describe('GraphiQL', () => {
  it('the page and every asset it needs are served by the gateway: no CDN', async () => {
    const page = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    const assets = [...html.matchAll(/"(\/graphql\/graphiql\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.map((a) => a.split('/').pop()).sort()).toEqual(
      ['editor.worker.bundle.js', 'graphiql.css', 'graphql.worker..bundle.js', 'json.worker.bundle.js', 'yoga-graphiql.umd.js'],
    );
    for (const a of assets) {
      const r = await fetch(base + a);
      expect(r.status, a).toBe(200);
      expect(r.headers.get('content-type')).toMatch(a.endsWith('.css') ? /^text\/css/ : /^application\/javascript/);
      expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    expect((await fetch(`${base}/graphql/graphiql/0.0.0/yoga-graphiql.umd.js`)).status).not.toBe(200);
    expect((await fetch(`${base}${assets[0].replace(/[^/]+$/, '')}..%2F..%2Fpackage.json`)).status).toBe(404);
  });

  it('runs a query and shows a subscription event in headless Chromium', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-chromium-'));
    let browser: Browser | undefined;
    try {
      browser = await playwright!.chromium.launchPersistentContext(dir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        timeout: 60_000,
      });
      const page: Page = browser.pages()[0] ?? (await browser.newPage());
      page.setDefaultTimeout(60_000);
      const elsewhere: string[] = [];
      const sockets: string[] = [];
      page.on('request', (r: { url(): string }) => {
        const u = r.url();
        if (!u.startsWith(base) && !u.startsWith('blob:') && !u.startsWith('data:')) elsewhere.push(u);
      });
      page.on('websocket', (ws: { url(): string }) => sockets.push(ws.url()));

      await page.goto(`${base}/graphql`);
      const queryEditor = page.locator('.graphiql-query-editor .monaco-editor');
      await queryEditor.waitFor();
      // The first text says what walnats is and shows its operations (not yoga's welcome text).
      await page.locator('.graphiql-query-editor', { hasText: 'orders_events' }).waitFor();
      expect((await queryEditor.innerText()).replace(/\u00a0/g, ' ')).toMatch(/walnats: every table of this database as GraphQL/);
      const response = page.locator('.graphiql-response');

      // The admin secret goes in GraphiQL's Headers tab, as a user would put it.
      await page.getByRole('button', { name: 'Headers' }).click();
      await page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .monaco-editor').click();
      await page.keyboard.press('Control+A');
      await page.keyboard.insertText(JSON.stringify({ 'x-walnats-admin-secret': SECRET }));
      await page.getByRole('button', { name: /Re-fetch GraphQL schema/ }).click();

      const run = async (text: string, name: string) => {
        await queryEditor.click();
        await page.keyboard.press('Control+A');
        await page.keyboard.insertText(text);
        // GraphiQL takes the operation from the editor a moment after typing; the tab's title
        // turning into the operation's name says it has, and the button runs what was typed.
        await page.locator('.graphiql-tab-active', { hasText: name }).waitFor();
        await page.locator('.graphiql-execute-button').click();
      };
      let lastText = '';
      const resultJson = async () => {
        try {
          // Monaco renders spaces as no-break spaces; the result is short enough to be all on screen.
          lastText = (await response.innerText()).replace(/\u00a0/g, ' ');
          return JSON.parse(lastText) as { data?: any; errors?: unknown[] };
        } catch {
          return undefined;
        }
      };

      await run('query Authors { authors(order_by: {id: asc}) { id name } }', 'Authors');
      const q = await waitFor('the query result in GraphiQL', async () => {
        const j = await resultJson();
        return j?.data?.authors || j?.errors ? j : undefined;
      }, 60_000, 200).catch((e) => {
        throw new Error(`${(e as Error).message}; the result pane shows: ${lastText}`);
      });
      expect(q.errors).toBeUndefined();
      expect(q.data.authors).toEqual([{ id: 1, name: 'Le Guin' }]);

      await run('subscription Inserts { authors_events(ops: [INSERT]) { op new { name } } }', 'Inserts');
      await waitFor('the subscription socket', async () => sockets.length > 0 || undefined, 60_000, 100);
      expect(sockets.every((u) => u.startsWith(`ws://127.0.0.1:${handle.httpPort}/graphql`))).toBe(true);
      // The subscription is live once its socket is open; inserts until one is seen cover the
      // moment between the socket opening and the consumer existing.
      let n = 0;
      let last = Date.now() - 2500;
      const ev = await waitFor('the insert event in GraphiQL', async () => {
        const j = await resultJson();
        if (j?.data?.authors_events) return j;
        if (j?.errors) throw new Error(`subscription failed: ${JSON.stringify(j.errors)}`);
        if (n < 20 && Date.now() - last > 3000) {
          last = Date.now();
          await pgs.sql('INSERT INTO authors (name) VALUES ($1)', [`Butler ${++n}`], db);
        }
        return undefined;
      }, 90_000, 250).catch((e) => {
        throw new Error(`${(e as Error).message}; the result pane shows: ${lastText}`);
      });
      expect(ev.data.authors_events.op).toBe('INSERT');
      expect(ev.data.authors_events.new.name).toMatch(/^Butler \d+$/);
      expect(elsewhere).toEqual([]);
    } finally {
      await browser?.close().catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
