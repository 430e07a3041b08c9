import { describe, expect, it } from 'vitest';
import type { PgoutputMessage } from '../../src/decoder/messages.ts';
import { createPgoutputDecoder } from '../../src/decoder/pgoutput.ts';
import { RelationCache, UnknownRelationError, sameShape } from '../../src/decoder/relations.ts';
import { TransactionSequenceError, createTransactionAssembler } from '../../src/decoder/transactions.ts';
import type { Change, Relation, RowChange } from '../../src/decoder/types.ts';
import { loadFixture } from '../fixtures/pgoutput/load.ts';

interface Step {
  walStart: bigint;
  msg: PgoutputMessage;
}

function steps(name: string): Step[] {
  const f = loadFixture(name);
  const d = createPgoutputDecoder({ protocolVersion: f.protoVersion });
  return f.messages.map((m) => ({ walStart: m.lsn, msg: d.decode(m.bytes) }));
}

function assemble(input: Step[]): Change[] {
  const a = createTransactionAssembler();
  return input.flatMap((s) => a.push(s.walStart, s.msg));
}

/** Compact view: kind/seq pairs. */
const shape = (changes: Change[]) => changes.map((c) => `${c.kind}:${c.seq}`);

function expectTxnInvariants(changes: Change[], input: Step[]): void {
  // Every change of a transaction has Begin's finalLsn, xid and commit time.
  let begin: Extract<Change, { kind: 'begin' }> | undefined;
  for (const c of changes) {
    if (c.kind === 'begin') begin = c;
    if (c.kind === 'message' && !c.transactional && begin === undefined) continue;
    expect(begin).toBeDefined();
    expect(c.commitLsn).toBe(begin!.commitLsn);
    expect(c.xid).toBe(begin!.xid);
    expect(c.commitTimeUs).toBe(begin!.commitTimeUs);
    if (c.kind === 'commit') begin = undefined;
  }
  // Positions of published events (everything but Relation, which borrows the next event's
  // seq) strictly increase.
  const positions = changes.filter((c) => c.kind !== 'relation');
  for (let i = 1; i < positions.length; i++) {
    const [a, b] = [positions[i - 1], positions[i]];
    expect(b.commitLsn > a.commitLsn || (b.commitLsn === a.commitLsn && b.seq > a.seq), `${a.kind}:${a.seq} → ${b.kind}:${b.seq}`).toBe(true);
  }
  // lsn is always the walStart of some input message.
  const starts = new Set(input.map((s) => s.walStart));
  for (const c of changes) expect(starts.has(c.lsn)).toBe(true);
}

describe('transaction assembler over captured transactions', () => {
  it('identity-default: seq numbering, commitLsn = Begin finalLsn, lsn = walStart, Commit with endLsn and eventCount', () => {
    const input = steps('identity-default');
    const changes = assemble(input);
    expect(shape(changes)).toEqual([
      'begin:0', 'relation:1', 'insert:1', 'insert:2', 'commit:3',
      'begin:0', 'update:1', 'commit:2',
      'begin:0', 'delete:1', 'commit:2',
    ]);
    expectTxnInvariants(changes, input);
    const begin = input[0].msg as Extract<PgoutputMessage, { tag: 'begin' }>;
    const commitMsg = input[4].msg as Extract<PgoutputMessage, { tag: 'commit' }>;
    expect(changes[0]).toEqual({ kind: 'begin', commitLsn: begin.finalLsn, seq: 0, lsn: input[0].walStart, xid: begin.xid, commitTimeUs: begin.commitTimeUs });
    expect(changes[3]).toMatchObject({
      kind: 'insert', lsn: input[3].walStart, before: null, beforeKind: null,
      after: ['2', 'Bär ☃', null, null, null], relation: { name: 'items' },
    });
    expect(changes[4]).toEqual({
      kind: 'commit', commitLsn: begin.finalLsn, seq: 3, lsn: input[4].walStart, xid: begin.xid,
      commitTimeUs: begin.commitTimeUs, endLsn: commitMsg.endLsn, eventCount: 2,
    });
    expect(changes[6]).toMatchObject({ kind: 'update', before: null, beforeKind: null, after: ['1', 'apple', '4', '1.50', '{a,b}'] });
    expect(changes[9]).toMatchObject({ kind: 'delete', before: ['2', null, null, null, null], beforeKind: 'key', after: null });
    // Relation changes: first sighting has no previous; its seq is that of the insert after it.
    expect(changes[1]).toMatchObject({ kind: 'relation', previous: undefined, relation: { name: 'items' }, lsn: input[1].walStart });
  });

  it('a Relation message streamed with no WAL position (0/0) takes the position of the message before it in its transaction', () => {
    // Captured with pg_logical_slot_peek_binary_changes every message has its LSN; over
    // START_REPLICATION the walsender sends 0/0 with every write of a change but its last.
    const input = steps('identity-default').map((s) => (s.msg.tag === 'relation' ? { ...s, walStart: 0n } : s));
    const changes = assemble(input);
    const rel = changes.find((c) => c.kind === 'relation')!;
    expect(rel.lsn).toBe(input[0].walStart); // the Begin's, the only message before it
    expect(rel.lsn).not.toBe(0n);
    const next = changes[changes.indexOf(rel) + 1];
    expect(rel.lsn <= next.lsn).toBe(true);
  });

  it('identity-full and key changes: before is the old row or the old key', () => {
    const full = assemble(steps('identity-full'));
    expect(full.find((c) => c.kind === 'update')).toMatchObject({ beforeKind: 'old', before: ['1', 'one', '10'], after: ['1', 'one', '11'] });
    expect(full.find((c) => c.kind === 'delete')).toMatchObject({ beforeKind: 'old', before: ['1', 'one', '11'], after: null });
    const key = assemble(steps('update-key-change'));
    expect(key.find((c) => c.kind === 'update')).toMatchObject({ seq: 1, beforeKind: 'key', before: ['1', '1', null], after: ['1', '2', 'x'] });
  });

  it('toast-unchanged: unchanged column stays undefined in after', () => {
    const changes = assemble(steps('toast-unchanged'));
    const upd = changes.find((c) => c.kind === 'update') as RowChange;
    expect(upd.after).toEqual(['1', 'second', undefined]);
  });

  it('truncate: one change per relation, each its own seq, in message order, with flags', () => {
    const input = steps('truncate');
    const changes = assemble(input);
    expect(shape(changes)).toEqual([
      'begin:0', 'relation:1', 'truncate:1', 'commit:2',
      'begin:0', 'relation:1', 'relation:1', 'relation:1', 'truncate:1', 'truncate:2', 'truncate:3', 'commit:4',
    ]);
    expectTxnInvariants(changes, input);
    const truncs = changes.filter((c): c is Extract<Change, { kind: 'truncate' }> => c.kind === 'truncate');
    expect(truncs.map((t) => [t.relation.name, t.cascade, t.restartIdentity])).toEqual([
      ['plain_t', false, false],
      ['parent_a', true, true],
      ['parent_b', true, true],
      ['child_c', true, true],
    ]);
    // All three come from one message: same walStart.
    expect(new Set(truncs.slice(1).map((t) => t.lsn)).size).toBe(1);
    expect(changes.at(-1)).toMatchObject({ kind: 'commit', eventCount: 3 });
  });

  it('messages: non-transactional ones are positioned at their own LSN, transactional ones take the next seq', () => {
    const input = steps('messages');
    const changes = assemble(input);
    expect(shape(changes)).toEqual(['message:1', 'begin:0', 'relation:1', 'insert:1', 'message:2', 'commit:3', 'message:1']);
    expectTxnInvariants(changes, input);
    const first = input[0].msg as Extract<PgoutputMessage, { tag: 'message' }>;
    expect(changes[0]).toEqual({
      kind: 'message', commitLsn: first.lsn, seq: 1, lsn: input[0].walStart, xid: undefined, commitTimeUs: 0n,
      prefix: 'walnats.test', content: Uint8Array.of(0x00, 0xff, 0x01, 0x02, 0xfe, 0xed), transactional: false,
    });
    expect(changes[4]).toMatchObject({ kind: 'message', transactional: true, prefix: 'walnats.tx', commitLsn: changes[1].commitLsn });
    expect(changes[6]).toMatchObject({ kind: 'message', transactional: false, prefix: 'walnats.kept', xid: undefined, commitTimeUs: 0n });
    expect(changes[6].commitLsn).toBe(changes[6].lsn);
  });

  it('enum-type: Type message emits nothing and fills the type-name cache', () => {
    const a = createTransactionAssembler();
    const input = steps('enum-type');
    const changes = input.flatMap((s) => a.push(s.walStart, s.msg));
    expect(shape(changes)).toEqual(['begin:0', 'relation:1', 'insert:1', 'commit:2']);
    const type = input[1].msg as Extract<PgoutputMessage, { tag: 'type' }>;
    expect(a.relations.typeName(type.typeOid)).toBe('mood');
    expect(a.relations.type(type.typeOid)).toEqual({ schema: 'public', name: 'mood' });
    expect(a.relations.typeName(23)).toBeUndefined();
  });

  it('origin: Origin message emits nothing', () => {
    expect(shape(assemble(steps('origin')))).toEqual(['begin:0', 'relation:1', 'insert:1', 'commit:2']);
  });

  it('a re-sent Relation reports the previous shape', () => {
    const a = createTransactionAssembler();
    const input = steps('identity-default');
    for (const s of input) a.push(s.walStart, s.msg);
    // Replay the first transaction: same relation, now known.
    const again = input.slice(0, 5).flatMap((s) => a.push(s.walStart, s.msg));
    const rel = again.find((c) => c.kind === 'relation') as Extract<Change, { kind: 'relation' }>;
    expect(rel.previous).toBeDefined();
    expect(sameShape(rel.previous!, rel.relation)).toBe(true);
  });
});

describe('transaction assembler rejects impossible sequences', () => {
  const input = steps('identity-default');
  const [begin, relation, insert1, , commit] = input;

  function pushAll(list: Step[]): void {
    const a = createTransactionAssembler();
    for (const s of list) a.push(s.walStart, s.msg);
  }

  it('a change outside a transaction', () => {
    expect(() => pushAll([relation, begin])).toThrow(/Relation message at 0\/[0-9A-F]+ outside a transaction/);
    const a = createTransactionAssembler();
    a.relations.apply((relation.msg as Extract<PgoutputMessage, { tag: 'relation' }>).relation);
    expect(() => a.push(insert1.walStart, insert1.msg)).toThrow(TransactionSequenceError);
    expect(() => a.push(insert1.walStart, insert1.msg)).toThrow(/Insert at .* outside a transaction/);
    expect(() => pushAll([commit])).toThrow(/Commit at .* outside a transaction/);
  });

  it('a Begin inside a transaction', () => {
    expect(() => pushAll([begin, relation, begin])).toThrow(/Begin of xid \d+ at .* inside transaction xid \d+/);
  });

  it('a Commit whose commit LSN differs from Begin', () => {
    const c = commit.msg as Extract<PgoutputMessage, { tag: 'commit' }>;
    const wrong: Step = { walStart: commit.walStart, msg: { ...c, commitLsn: c.commitLsn + 8n } };
    expect(() => pushAll([begin, relation, insert1, wrong])).toThrow(/commit LSN .* but Begin of xid \d+ announced/);
  });

  it('a change for an unknown relation OID', () => {
    let err: unknown;
    try {
      pushAll([begin, insert1]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TransactionSequenceError);
    const oid = (insert1.msg as Extract<PgoutputMessage, { tag: 'insert' }>).relationOid;
    expect((err as Error).message).toContain(`relation OID ${oid}`);
    expect((err as Error).cause).toBeInstanceOf(UnknownRelationError);
  });

  it('a truncate naming an unknown relation emits nothing', () => {
    const t = steps('truncate');
    const a = createTransactionAssembler();
    a.push(t[4].walStart, t[4].msg); // Begin
    a.push(t[5].walStart, t[5].msg); // parent_a only
    expect(() => a.push(t[8].walStart, t[8].msg)).toThrow(/Truncate .* relation OID/);
  });

  it('a tuple whose column count differs from its relation', () => {
    const ins = insert1.msg as Extract<PgoutputMessage, { tag: 'insert' }>;
    const short: Step = { walStart: insert1.walStart, msg: { ...ins, newTuple: ins.newTuple.slice(1) } };
    expect(() => pushAll([begin, relation, short])).toThrow(/public\.items .* has 4 column\(s\), its Relation message 5/);
  });

  it('a transactional message outside a transaction', () => {
    const m = steps('messages')[4];
    expect(() => pushAll([m])).toThrow(/transactional logical message .* outside a transaction/);
  });

  it.each(['stream-abort', 'stream-prepare', 'two-phase'])('%s: streaming and two-phase messages', (name) => {
    expect(() => pushAll(steps(name))).toThrow(/walnats does not request streaming or two_phase/);
  });
});

describe('RelationCache', () => {
  const base: Relation = {
    oid: 16384,
    schema: 'public',
    name: 'orders',
    replicaIdentity: 'default',
    columns: [
      { name: 'id', typeOid: 23, typeMod: -1, isKey: true },
      { name: 'price', typeOid: 1700, typeMod: 655366, isKey: false },
    ],
  };
  const col = (i: number, patch: Partial<Relation['columns'][number]>): Relation => ({
    ...base,
    columns: base.columns.map((c, j) => (j === i ? { ...c, ...patch } : c)),
  });

  it('first sighting is a change, the same shape again is not', () => {
    const cache = new RelationCache();
    expect(cache.apply(base)).toEqual({ relation: base, previous: undefined, changed: true });
    const copy = structuredClone(base);
    expect(cache.apply(copy)).toEqual({ relation: copy, previous: base, changed: false });
    expect(cache.get(16384)).toBe(copy);
  });

  it.each<[string, Relation]>([
    ['schema', { ...base, schema: 'sales' }],
    ['name (a rename keeps the OID)', { ...base, name: 'orders_v2' }],
    ['replica identity', { ...base, replicaIdentity: 'full' }],
    ['column name', col(1, { name: 'amount' })],
    ['column type', col(1, { typeOid: 701 })],
    ['column typmod', col(1, { typeMod: 655368 })],
    ['key flag', col(1, { isKey: true })],
    ['added column', { ...base, columns: [...base.columns, { name: 'note', typeOid: 25, typeMod: -1, isKey: false }] }],
    ['dropped column', { ...base, columns: base.columns.slice(0, 1) }],
  ])('a different %s is a change', (_, next) => {
    const cache = new RelationCache();
    cache.apply(base);
    expect(cache.apply(next)).toEqual({ relation: next, previous: base, changed: true });
    expect(cache.get(16384)).toBe(next);
  });

  it('get of an unknown OID names it', () => {
    const cache = new RelationCache();
    expect(() => cache.get(99999)).toThrow(/unknown relation OID 99999/);
    expect(cache.has(99999)).toBe(false);
  });
});
