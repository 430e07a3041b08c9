import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOCS_PATH, renderConfigDocs } from '../../scripts/gen-config-docs.ts';
import { CONFIG_SETTINGS, envName, flagName } from '../../src/config.ts';

describe('docs/configuration.md', () => {
  it('is exactly what scripts/gen-config-docs.ts generates (run `npx tsx scripts/gen-config-docs.ts`)', () => {
    expect(fs.readFileSync(DOCS_PATH, 'utf8')).toBe(renderConfigDocs());
  });

  it('has a row for every setting with its env and flag names', () => {
    const text = renderConfigDocs();
    for (const s of CONFIG_SETTINGS) {
      expect(text).toContain(`| \`${s.key}\` | \`${envName(s.key)}\` | \`${flagName(s.key)}\` |`);
    }
  });
});
