#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx's loader, so that `npx walnats` works
// from a checkout and from the package without a build step.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli.ts');
