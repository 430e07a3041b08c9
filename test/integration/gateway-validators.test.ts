/**
 * Validators as an operator deploys them: a directory outside the project (no package.json
 * saying "type": "module"), modules in every documented form, every loading problem reported
 * at once as a configuration error, and a validator's own bug kept from the client.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { checkValidators, loadValidators } from '../../src/gateway/validators.ts';
import { useRig } from '../fixtures/gateway/setup.ts';

const made: string[] = [];
afterAll(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function dirWith(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-validators-'));
  made.push(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const GOOD = {
  // TypeScript with types, as docs/gateway.md shows it
  'widgets.ts': `type Row = Record<string, unknown>;
export default {
  insert(row: Row) {
    if ((row.qty as number) < 0) throw new Error('qty must not be negative');
    if (row.name === 'boom') return (undefined as unknown as { boom: Row }).boom; // a bug: TypeError
    return { ...row, name: String(row.name).trim().toUpperCase() };
  },
};
`,
  // an ES module in a .js file, in a directory whose package type is CommonJS
  'gadgets.js': `export default { insert(row) { return { ...row, name: row.name + '!' } } };\n`,
  // CommonJS still works
  'legacy.js': `module.exports = { delete() { throw new Error('no deletes') } };\n`,
  // a function
  'tools.mjs': `export default function ({ op, row }) { if (op === 'insert' && !row.name) throw new Error('name needed'); }\n`,
  'notes.txt': 'not a module',
};

describe('loading validators', () => {
  it('loads .ts, .js (ES module or CommonJS) and .mjs from a directory outside the project', async () => {
    const dir = dirWith(GOOD);
    expect(fs.existsSync(path.join(dir, 'package.json'))).toBe(false);
    const vs = await loadValidators(dir);
    expect([...vs.keys()].sort()).toEqual(['gadgets', 'legacy', 'tools', 'widgets']);
    expect(await vs.get('widgets')!.insert!({ name: ' a ', qty: 1 }, {} as never)).toEqual({ name: 'A', qty: 1 });
    expect(await vs.get('gadgets')!.insert!({ name: 'g' }, {} as never)).toEqual({ name: 'g!' });
    expect(() => vs.get('legacy')!.delete!({} as never)).toThrow('no deletes');
    expect(() => vs.get('tools')!.insert!({}, { op: 'insert' } as never)).toThrow('name needed');
  });

  it('loads them the same under the loader bin/walnats.js uses (tsx), not only under the test runner', () => {
    // Vitest compiles every import itself; the binary runs the sources through tsx's ESM
    // hooks, where a .ts or .js file outside an ES-module package used to load as CommonJS.
    const dir = dirWith(GOOD);
    const script = `import { register } from 'tsx/esm/api'; register();
      const { loadValidators } = await import(${JSON.stringify(path.resolve('src/gateway/validators.ts'))});
      const vs = await loadValidators(${JSON.stringify(dir)});
      const w = await vs.get('widgets').insert({ name: ' a ', qty: 1 }, {});
      console.log(JSON.stringify({ names: [...vs.keys()].sort(), w }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: path.resolve('.'), encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').pop()!)).toEqual({ names: ['gadgets', 'legacy', 'tools', 'widgets'], w: { name: 'A', qty: 1 } });
  });

  it('reports every problem at once, each with its file (and line where the error has one), as a configuration error', async () => {
    const dir = dirWith({
      'a.mjs': `export default {\n  insert(row) {\n    return row throw;\n  },\n};\n`,
      'b.ts': `export default { insert(row: number { } };\n`,
      'c.mjs': `export const foo = 1;\n`,
      'd.mjs': `export default { insert: 5 };\n`,
      'ok.mjs': `export default { insert(r) { return r } };\n`,
    });
    const err = await loadValidators(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.map((p) => [p.key, path.basename(p.source)])).toEqual([
      ['validators_dir', 'a.mjs'], ['validators_dir', 'b.ts'], ['validators_dir', 'c.mjs'], ['validators_dir', 'd.mjs'],
    ]);
    expect(problems[0].message).toBe("cannot load it (line 3, column 16): Unexpected token 'throw'");
    expect(problems[1].message).toMatch(/^cannot load it \(line 1, column \d+\): Expected/); // esbuild's, through tsx
    expect(problems[2].message).toBe('export default an object with insert, update or delete functions, or a function (it exports foo)');
    expect(problems[3].message).toBe('insert must be a function');
    expect((err as Error).message).toMatch(/invalid configuration \(4 problems\)/);
  });

  it('a directory that cannot be read is a configuration error naming it', async () => {
    const missing = path.join(os.tmpdir(), 'walnats-no-such-validators-dir');
    const err = await loadValidators(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`validators_dir: cannot read it: ENOENT`);
    expect((err as Error).message).toContain(missing);
  });

  it('names validators that match no table (a misspelt file name would never run)', () => {
    const vs = new Map([['orders', {}], ['ordrs', {}], ['audit.log', {}], ['public.items', {}]]);
    const tables = new Set(['public.orders', 'audit.log', 'public.items']);
    expect(checkValidators(vs, (s, t) => tables.has(`${s}.${t}`), 'public')).toEqual(['ordrs: no table public.ordrs, so this validator never runs']);
  });
});

describe('a validator at work', () => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const { rig } = useRig({
    sqlText: 'CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL, qty int NOT NULL DEFAULT 0); CREATE TABLE gadgets (id serial PRIMARY KEY, name text NOT NULL)',
    gateway: { adminSecret: 'adm1n', validatorsDir: dirWith({ ...GOOD, 'gizmos.mjs': `export default { insert(r) { return r } };\n` }), logger },
  });
  const admin = { 'x-walnats-admin-secret': 'adm1n' };

  it('rejects with its message, amends, and keeps its own bugs from the client (masked, logged with the stack)', async () => {
    const rejected = await rig.gql('mutation { insert_widgets_one(object: {name: "x", qty: -1}) { id } }', undefined, admin);
    expect(rejected.body.errors[0]).toMatchObject({ message: 'qty must not be negative', extensions: { code: 'validation-failed' } });
    const amended = await rig.gql('mutation { insert_widgets_one(object: {name: " w ", qty: 2}) { name } insert_gadgets_one(object: {name: "g"}) { name } }', undefined, admin);
    expect(amended.body.data).toEqual({ insert_widgets_one: { name: 'W' }, insert_gadgets_one: { name: 'g!' } });
    const bug = await rig.gql('mutation { insert_widgets_one(object: {name: "boom", qty: 1}) { id } }', undefined, admin);
    expect(bug.body.errors[0].message).toBe('Unexpected error.');
    expect(bug.text).not.toMatch(/boom|Cannot read properties/);
    const logged = lines.map((l) => JSON.parse(l)).find((e) => e.msg === 'unexpected error in a GraphQL request');
    expect(logged?.err.message).toMatch(/validator of public\.widgets: insert failed: Cannot read properties of undefined \(reading 'boom'\)/);
    expect(logged?.err.stack).toMatch(/widgets\.ts/); // where the bug is
    expect((await rig.sql('SELECT name FROM widgets ORDER BY id')).map((r) => r.name)).toEqual(['W']);
  });

  it('warns at start about a validator that matches no table', () => {
    expect(lines.some((l) => /validators: gizmos: no table public\.gizmos, so this validator never runs/.test(l))).toBe(true);
  });
});
