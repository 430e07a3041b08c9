import type { Env, Result } from './lib.ts';
export async function benchFanout(_env: Env): Promise<Result[]> { return []; }
export async function benchQueries(_env: Env): Promise<Result[]> { return []; }
