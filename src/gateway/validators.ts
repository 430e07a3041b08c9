/**
 * Per-table write validators: one JS/TS module per table in `validators_dir`, named after
 * the table (`orders.ts`, or `schema.orders.ts` outside the first configured schema).
 *
 * ```ts
 * export default {
 *   insert(row, ctx) { if (row.qty <= 0) throw new Error('qty must be positive'); return { ...row, note: 'checked' }; },
 *   update(set, ctx) { ... },   // ctx.inc, ctx.where / ctx.pk describe the rest of the update
 *   delete(ctx) { ... },
 * };
 * ```
 * Rows use Postgres column names. Throwing rejects the whole request (its transaction is
 * rolled back) with the error's message, which the client sees; returning an object
 * replaces the row (insert) or the `_set` (update); returning nothing keeps it. A default
 * export that is a function is called as `fn({ op, row, set, inc, where, pk, ...ctx })`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { GraphQLError } from 'graphql/index.js';
import { tsImport } from 'tsx/esm/api';
import { ConfigError, type ConfigProblem } from '../config.ts';
import type { Row } from './mutate.ts';

export interface ValidatorContext {
  op: 'insert' | 'update' | 'delete';
  schema: string;
  table: string;
  role: string;
  session: Record<string, string>;
  inc?: Row;
  where?: unknown;
  pk?: Row | null;
}

export interface TableValidator {
  insert?(row: Row, ctx: ValidatorContext): unknown;
  update?(set: Row, ctx: ValidatorContext): unknown;
  delete?(ctx: ValidatorContext): unknown;
}

export type Validators = Map<string, TableValidator>; // module name (without extension) → validator

const OPS = ['insert', 'update', 'delete'] as const;

type EsbuildErrors = { errors?: Array<{ text?: string; location?: { line: number; column: number } | null }> };

/**
 * Why a module did not load, with the line and column of a syntax error: esbuild (which tsx
 * uses for .ts) says where itself; Node's own SyntaxError for an ES module names no position
 * (it prints one only for an uncaught error), so the source is parsed again with esbuild.
 */
async function whyNotLoaded(err: unknown, file: string): Promise<string> {
  const at = (l: { line: number; column: number }) => ` (line ${l.line}, column ${l.column + 1})`;
  const first = (err as EsbuildErrors).errors?.[0];
  if (first?.text) return `${first.location ? at(first.location) : ''}: ${first.text}`;
  const full = (err as Error)?.message ?? String(err);
  // tsx passes esbuild's text on: "Transform failed with 1 error:\n<file>:<line>:<column>: ERROR: <text>"
  const tsx = /:(\d+):(\d+): ERROR: (.*)/.exec(full);
  if (tsx) return `${at({ line: Number(tsx[1]), column: Number(tsx[2]) })}: ${tsx[3]}`;
  const message = full.split('\n')[0];
  if (err instanceof SyntaxError) {
    try {
      const { transform } = await import('esbuild');
      await transform(fs.readFileSync(file, 'utf8'), { loader: /\.m?ts$/.test(file) ? 'ts' : 'js', format: 'esm', sourcefile: file });
    } catch (e) {
      const loc = (e as EsbuildErrors).errors?.[0]?.location;
      if (loc) return `${at(loc)}: ${message}`;
    }
  }
  return `: ${message}`;
}

/**
 * Loads every validator of `dir`, or reports every problem at once as a ConfigError (the
 * process then exits with 2, as for any configuration error): a directory that cannot be
 * read, a module that does not load (with its line where the error says), a module that
 * exports no validator.
 *
 * Modules load through tsx's `tsImport`, so `orders.ts` and `orders.js` written as ES modules
 * work wherever they live: the nearest package.json need not say `"type": "module"`. Such a
 * module comes back wrapped (`{ __esModule, default }`) and is unwrapped here.
 */
export async function loadValidators(dir: string | undefined): Promise<Validators> {
  const out: Validators = new Map();
  if (!dir) return out;
  const problems: ConfigProblem[] = [];
  const problem = (source: string, message: string) => problems.push({ key: 'validators_dir', source, message });
  let files: string[];
  try {
    files = fs.readdirSync(dir).sort();
  } catch (err) {
    problem(`directory ${dir}`, `cannot read it: ${(err as Error).message}`);
    throw new ConfigError(problems);
  }
  for (const f of files) {
    const m = /^(.*)\.(ts|mts|js|mjs)$/.exec(f);
    if (!m || f.endsWith('.d.ts') || f.startsWith('_')) continue;
    const file = path.resolve(dir, f);
    let mod: Record<string, unknown>;
    try {
      mod = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
    } catch (err) {
      problem(`file ${file}`, `cannot load it${await whyNotLoaded(err, file)}`);
      continue;
    }
    let d: unknown = mod.default ?? mod;
    if (d && typeof d === 'object' && (d as { __esModule?: unknown }).__esModule && 'default' in d) d = (d as { default: unknown }).default;
    if (typeof d === 'function') {
      const fn = d as (a: Record<string, unknown>) => unknown;
      out.set(m[1], {
        insert: (row, ctx) => fn({ ...ctx, row }),
        update: (set, ctx) => fn({ ...ctx, set }),
        delete: (ctx) => fn({ ...ctx }),
      });
    } else if (d && typeof d === 'object' && OPS.some((op) => (d as Record<string, unknown>)[op] !== undefined)) {
      const bad = OPS.filter((op) => (d as Record<string, unknown>)[op] !== undefined && typeof (d as Record<string, unknown>)[op] !== 'function');
      if (bad.length) problem(`file ${file}`, `${bad.join(', ')} must be a function`);
      else out.set(m[1], d as TableValidator);
    } else {
      const names = d && typeof d === 'object' ? Object.keys(d).filter((k) => k !== '__esModule') : [];
      problem(`file ${file}`, `export default an object with insert, update or delete functions, or a function (it exports ${names.length ? names.join(', ') : 'nothing of that kind'})`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return out;
}

/** Validator names that match no table of the model: a misspelt file name would do nothing. */
export function checkValidators(vs: Validators, hasTable: (schema: string, table: string) => boolean, firstSchema: string): string[] {
  const out: string[] = [];
  for (const name of vs.keys()) {
    const dot = name.indexOf('.');
    const found = dot > 0 ? hasTable(name.slice(0, dot), name.slice(dot + 1)) || hasTable(firstSchema, name) : hasTable(firstSchema, name);
    if (!found) out.push(`${name}: no table ${dot > 0 ? name : `${firstSchema}.${name}`}, so this validator never runs`);
  }
  return out;
}

export function validatorFor(vs: Validators, schema: string, table: string, firstSchema: string): TableValidator | undefined {
  return vs.get(`${schema}.${table}`) ?? (schema === firstSchema ? vs.get(table) : undefined);
}

/**
 * A TypeError, ReferenceError or SyntaxError thrown by a validator is a bug in it, not a
 * rejection: it is not shown to the client (the gateway masks it as `Unexpected error.` and
 * logs it with its stack). Anything else a validator throws rejects the write with its message.
 */
const BUGS = [TypeError, ReferenceError, SyntaxError];

export async function runValidator<T>(fn: () => unknown, fallback: T, where = 'validator'): Promise<T> {
  let r: unknown;
  try {
    r = await fn();
  } catch (e) {
    if (BUGS.some((B) => e instanceof B)) throw new Error(`${where} failed: ${(e as Error).message}`, { cause: e });
    const message = e instanceof Error ? e.message : String(e);
    throw new GraphQLError(message, { extensions: { code: 'validation-failed' } });
  }
  if (r && typeof r === 'object') return r as T;
  return fallback;
}
