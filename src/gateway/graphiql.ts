/**
 * GraphiQL without the internet. graphql-yoga's page loads its script, stylesheet and Monaco
 * workers from a CDN; here they come from the `@graphql-yoga/graphiql` package and are
 * served by the gateway itself under `<endpoint>/graphiql/<version>/`, so GraphiQL works on
 * machines that reach nothing but the gateway. Without the package the page falls back to
 * yoga's CDN one (and the gateway says so at start).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';

const FILES: Record<string, string> = {
  'yoga-graphiql.umd.js': 'application/javascript; charset=utf-8',
  'graphiql.css': 'text/css; charset=utf-8',
  'editor.worker.bundle.js': 'application/javascript; charset=utf-8',
  'json.worker.bundle.js': 'application/javascript; charset=utf-8',
  'graphql.worker..bundle.js': 'application/javascript; charset=utf-8',
};
const WORKERS = new Set(['editor.worker.bundle.js', 'json.worker.bundle.js', 'graphql.worker..bundle.js']);

export interface GraphiqlAssets {
  version: string;
  /** URL prefix of the assets, e.g. `/graphql/graphiql/4.5.0/`. */
  base: string;
  /** The page; `opts` go to YogaGraphiQL.renderYogaGraphiQL. */
  render(opts: Record<string, unknown>): string;
  /** Serves an asset when the request is for one; false otherwise. */
  serve(req: IncomingMessage, res: ServerResponse): boolean;
}

/** The local GraphiQL assets, or null when `@graphql-yoga/graphiql` is not installed. */
export function localGraphiql(endpoint: string): GraphiqlAssets | null {
  let dist: string;
  let version: string;
  try {
    const require = createRequire(import.meta.url);
    const pkgFile = require.resolve('@graphql-yoga/graphiql/package.json');
    version = (JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { version: string }).version;
    dist = path.join(path.dirname(pkgFile), 'dist');
    for (const f of Object.keys(FILES)) fs.accessSync(fileOf(dist, f));
  } catch {
    return null;
  }
  const base = `${endpoint.replace(/\/$/, '')}/graphiql/${version}/`;
  const cache = new Map<string, { raw: Buffer; gz?: Buffer }>();
  const url = (f: string) => JSON.stringify(base + f);
  const workerUrls = `{editorWorkerService:${url('editor.worker.bundle.js')},json:${url('json.worker.bundle.js')},graphql:${url('graphql.worker..bundle.js')}}`;
  return {
    version,
    base,
    render(opts) {
      const title = escapeHtml(String(opts.title ?? 'GraphiQL'));
      // JSON in a <script>: `<` escaped so no value can close the element.
      const json = JSON.stringify(opts).replace(/</g, '\\u003c');
      return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>`
        + `<link rel="icon" href="data:,"><link rel="stylesheet" href="${base}graphiql.css"></head>`
        + `<body id="body" class="no-focus-outline"><noscript>You need to enable JavaScript to run this app.</noscript><div id="root">Loading ${title}…</div>`
        + `<script>const workers={},workerUrls=${workerUrls};`
        + `function prepareWorkers(){return Promise.all(Object.entries(workerUrls).map(async([k,u])=>{const r=await fetch(u);workers[k]=URL.createObjectURL(new Blob([await r.text()],{type:"application/javascript"}))}))}`
        + `self.MonacoEnvironment={globalAPI:false,getWorkerUrl:function(_id,label){return workers[label]}}</script>`
        + `<script src="${base}yoga-graphiql.umd.js"></script>`
        + `<script>prepareWorkers().finally(()=>{YogaGraphiQL.renderYogaGraphiQL(root,${json})})</script></body></html>`;
    },
    serve(req, res) {
      const p = new URL(req.url ?? '/', 'http://x').pathname;
      if (!p.startsWith(base)) return false;
      const name = p.slice(base.length);
      const type = FILES[name];
      if (!type || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return true;
      }
      let entry = cache.get(name);
      if (!entry) cache.set(name, (entry = { raw: fs.readFileSync(fileOf(dist, name)) }));
      const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      if (gzip && !entry.gz) entry.gz = gzipSync(entry.raw);
      const body = gzip ? entry.gz! : entry.raw;
      res.writeHead(200, {
        'content-type': type,
        'content-length': body.length,
        'cache-control': 'public, max-age=31536000, immutable', // the path carries the version
        vary: 'accept-encoding',
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
  };
}

function fileOf(dist: string, name: string): string {
  return WORKERS.has(name) ? path.join(dist, 'monacoeditorwork', name) : path.join(dist, name);
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
