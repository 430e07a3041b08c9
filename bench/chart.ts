import type { Result } from './lib.ts';
export function renderChart(_r: Result[], _m: unknown): string { return ''; }
