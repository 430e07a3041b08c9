import { describe, expect, it } from 'vitest';
import { decodeEvent } from '../../src/gateway/events.ts';
import { escapeToken } from '../../src/events/subject.ts';

const msg = (body: unknown, headers: Record<string, string>) => ({
  seq: 7,
  data: new TextEncoder().encode(JSON.stringify(body)),
  headers: { get: (k: string) => headers[k] ?? '' } as never,
});

describe('decodeEvent', () => {
  it('takes schema and table from the source block', () => {
    const e = decodeEvent(msg({ op: 'c', after: { id: 1 }, source: { schema: 'sch.ema', table: 'a b' } }, {}));
    expect(e).toMatchObject({ streamSeq: 7, schema: 'sch.ema', table: 'a b' });
  });
  it('without a source block, unescapes the Walnats-Schema/Walnats-Table header tokens', () => {
    const e = decodeEvent(msg({ op: 'c', after: { id: 1 } }, { 'Walnats-Schema': escapeToken('sch.ema'), 'Walnats-Table': escapeToken('Ärger *x') }));
    expect(e).toMatchObject({ schema: 'sch.ema', table: 'Ärger *x' });
  });
});
