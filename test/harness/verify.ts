/**
 * Checks the stream against what the database committed: every change exactly once, in
 * commit order, no gap. The load writes a `ledger` table whose expected event list is known.
 */
import { expect } from 'vitest';
import type { StoredEvent } from './stream.ts';

export interface ExpectedChange {
  op: 'c' | 'u' | 'd';
  id: number;
  v: number | null;
}

export function ledgerChanges(events: StoredEvent[]): ExpectedChange[] {
  return events
    .filter((e) => e.body.source?.table === 'ledger' && (e.body.op === 'c' || e.body.op === 'u' || e.body.op === 'd'))
    .map((e) => ({ op: e.body.op, id: Number((e.body.after ?? e.body.before).id), v: e.body.after ? e.body.after.v : null }));
}

/** Exactly once, in order: positions strictly increase and message ids are unique. */
export function expectCleanStream(events: StoredEvent[]): void {
  const ids = new Set<string>();
  let prev: [bigint, number] | undefined;
  const lsn = (s: string) => {
    const [h, l] = s.split('/');
    return (BigInt('0x' + h) << 32n) | BigInt('0x' + l);
  };
  for (const e of events) {
    const id = e.headers['Nats-Msg-Id'];
    expect(ids.has(id), `duplicate Nats-Msg-Id ${id}`).toBe(false);
    ids.add(id);
    if (!e.body.source || e.body.op === 'schema') continue;
    const pos: [bigint, number] = [lsn(e.body.source.commit_lsn), e.body.source.seq];
    if (prev) {
      const after = pos[0] > prev[0] || (pos[0] === prev[0] && pos[1] > prev[1]);
      expect(after, `event ${id} is not after ${prev[0].toString(16)}:${prev[1]}`).toBe(true);
    }
    prev = pos;
  }
}

export function expectSameChanges(actual: ExpectedChange[], expected: ExpectedChange[]): void {
  // Compare compactly first (a readable diff for the first mismatch), then in full.
  const first = actual.findIndex((a, i) => !expected[i] || a.op !== expected[i].op || a.id !== expected[i].id || a.v !== expected[i].v);
  if (first >= 0 || actual.length !== expected.length) {
    const at = first >= 0 ? first : Math.min(actual.length, expected.length);
    expect({ at, count: actual.length, around: actual.slice(at, at + 3) }).toEqual({ at, count: expected.length, around: expected.slice(at, at + 3) });
  }
}
