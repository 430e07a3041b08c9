// A permissions file that cannot be used is a configuration error: every problem, with the file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.ts';
import { loadPermissionsFile } from '../../src/gateway/permissions.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walnats-perms-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

describe('loadPermissionsFile', () => {
  it.each([
    ['missing', path.join(dir, 'nope.yaml'), [/^cannot read it: ENOENT/]],
    ['not YAML', file('bad.yaml', 'roles: [x\n  y: 1\n'), [/^cannot read it: /]],
    ['not JSON', file('bad.json', '{"roles": '), [/^cannot read it: /]],
    ['no roles map', file('empty.yaml', 'tables: {}\n'), [/top level must be an object with a "roles" map/]],
    ['several problems', file('two.yaml', 'roles:\n  admin: {}\n  user: 5\n'), [/role "admin" is reserved/, /user/]],
  ])('%s: a ConfigError naming permissions_file and the file', (_what, f, messages) => {
    let err: unknown;
    try {
      loadPermissionsFile(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.length).toBeGreaterThanOrEqual(messages.length);
    for (const p of problems) expect(p).toMatchObject({ key: 'permissions_file', source: `file ${f}` });
    messages.forEach((m, i) => expect(problems[i].message).toMatch(m));
  });

  it('reads a good file', () => {
    const spec = loadPermissionsFile(file('ok.yaml', 'roles:\n  user:\n    tables:\n      orders:\n        select: { columns: [id] }\n'));
    expect(spec.roles.user.tables!.orders.select).toEqual({ columns: ['id'] });
  });
});
