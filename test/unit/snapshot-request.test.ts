import { describe, expect, it } from 'vitest';
import { readRequest, type TableProgress } from '../../src/snapshot/control.ts';
import { progressLine } from '../../src/snapshot/request.ts';

describe('snapshot request messages', () => {
  it.each([
    ['objects, as walnats snapshot writes them', '{"id":"bf-1","tables":[{"schema":"public","table":"orders"}]}', [{ schema: 'public', table: 'orders' }]],
    ['names, as the command takes them', '{"id":"bf-1","tables":["public.orders","items","\\"my schema\\".\\"line items\\""]}', [
      { schema: 'public', table: 'orders' },
      { schema: 'public', table: 'items' },
      { schema: 'my schema', table: 'line items' },
    ]],
    ['both mixed', '{"id":"bf-1","tables":["public.a",{"schema":"s","table":"b"}]}', [{ schema: 'public', table: 'a' }, { schema: 's', table: 'b' }]],
  ])('accepts tables as %s', (_what, text, tables) => {
    expect(readRequest(text)).toEqual({ id: 'bf-1', tables });
    expect(readRequest(new TextEncoder().encode(text))).toEqual({ id: 'bf-1', tables });
  });

  it.each([
    ['{"id":', /not JSON/],
    ['[1]', /"id" must be a non-empty string/],
    ['"x"', /not a JSON object|"id"/],
    ['{"tables":["a"]}', /"id" must be a non-empty string/],
    ['{"id":"x","tables":[]}', /"tables" must be a non-empty array/],
    ['{"id":"x","tables":"public.a"}', /"tables" must be a non-empty array/],
    ['{"id":"x","tables":[42]}', /each table must be .* not 42/],
    ['{"id":"x","tables":[{"schema":"s"}]}', /each table must be/],
    ['{"id":"x","tables":["\\"unterminated"]}', /unterminated quoted identifier/],
  ])('says what is wrong with %s', (text, problem) => {
    const r = readRequest(text);
    expect(r).toHaveProperty('problem');
    expect((r as { problem: string }).problem).toMatch(problem);
  });
});

describe('walnats snapshot progress line', () => {
  const t = (table: string, rows: number, estimated: number | null, done = false): TableProgress => ({ schema: 'public', table, rows, estimated, after: null, done });

  it('one table: bar, percentage, the table with its rows, rate', () => {
    expect(progressLine([t('orders', 45000, 100000)], t('orders', 45000, 100000), false, 3750)).toBe(
      '[##############----------------]  45% public.orders 45000/~100000 rows · 12000 rows/s',
    );
  });

  it('several tables: the current table counts its own rows, the job total comes beside it', () => {
    const tables = [t('items', 50000, 49719, true), t('pairs', 600, 1000)];
    expect(progressLine(tables, t('pairs', 600, 1000), false, 1000)).toBe(
      '[##############################]  99% public.pairs 600/~1000 rows · 2 tables 50600/~51000 rows · 50600 rows/s',
    );
  });

  it('finished is 100 % whatever the estimates said; unknown estimates show rows alone', () => {
    expect(progressLine([t('a', 10, null, true)], t('a', 10, null, true), true, 1000)).toBe('[##############################] 100% public.a 10/~10 rows · 10 rows/s');
    expect(progressLine([t('a', 0, null)], null, false, 1000)).toBe('[------------------------------]   0% · 0 rows/s');
  });
});
