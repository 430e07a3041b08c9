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

export async function loadValidators(dir: string | undefined): Promise<Validators> {
  const out: Validators = new Map();
  if (!dir) return out;
  for (const f of fs.readdirSync(dir).sort()) {
    const m = /^(.*)\.(ts|mts|js|mjs)$/.exec(f);
    if (!m || f.endsWith('.d.ts') || f.startsWith('_')) continue;
    const mod = (await import(pathToFileURL(path.resolve(dir, f)).href)) as { default?: unknown };
    const d = mod.default ?? mod;
    let v: TableValidator;
    if (typeof d === 'function') {
      const fn = d as (a: Record<string, unknown>) => unknown;
      v = {
        insert: (row, ctx) => fn({ ...ctx, row }),
        update: (set, ctx) => fn({ ...ctx, set }),
        delete: (ctx) => fn({ ...ctx }),
      };
    } else if (d && typeof d === 'object') v = d as TableValidator;
    else throw new Error(`validator ${f}: export a default object with insert/update/delete, or a function`);
    out.set(m[1], v);
  }
  return out;
}

export function validatorFor(vs: Validators, schema: string, table: string, firstSchema: string): TableValidator | undefined {
  return vs.get(`${schema}.${table}`) ?? (schema === firstSchema ? vs.get(table) : undefined);
}

export async function runValidator<T>(fn: () => unknown, fallback: T): Promise<T> {
  let r: unknown;
  try {
    r = await fn();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new GraphQLError(message, { extensions: { code: 'validation-failed' } });
  }
  if (r && typeof r === 'object') return r as T;
  return fallback;
}
