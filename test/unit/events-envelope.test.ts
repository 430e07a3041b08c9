import { describe, expect, it } from 'vitest';
import { createEventBuilder, commitTimeToMs, type OutboundEvent } from '../../src/events/envelope.ts';
import { comparePositions, positionFromHeaders } from '../../src/events/position.ts';
import { parseLsn } from '../../src/lsn.ts';
import type { Change, Relation, RowChange, TupleData } from '../../src/decoder/types.ts';

// Trivial converter: int/json OIDs spliced as text (like the real one), everything else a string.
const INT8 = 20;
const INT4 = 23;
const TEXT = 25;
const JSON_OID = 114;
const JSONB = 3802;
const convert = (text: string, oid: number) =>
  oid === INT8 || oid === INT4 || oid === JSON_OID || oid === JSONB ? text : JSON.stringify(text);

const orders: Relation = {
  oid: 16384,
  schema: 'public',
  name: 'orders',
  replicaIdentity: 'default',
  columns: [
    { name: 'id', typeOid: INT8, typeMod: -1, isKey: true },
    { name: 'qty', typeOid: INT4, typeMod: -1, isKey: false },
    { name: 'notes', typeOid: TEXT, typeMod: -1, isKey: false },
    { name: 'doc', typeOid: JSON_OID, typeMod: -1, isKey: false },
  ],
};
const fullOrders: Relation = { ...orders, replicaIdentity: 'full' };

const commitTimeUs = 817_200_000_000_000n; // 2025-11-23T08:00:00Z - 946684800000 ms
const pos = { commitLsn: parseLsn('0/16B37F0'), seq: 2, lsn: parseLsn('0/16B3748'), xid: 758, commitTimeUs };

function row(kind: RowChange['kind'], relation: Relation, before: TupleData | null, beforeKind: RowChange['beforeKind'], after: TupleData | null): RowChange {
  return { ...pos, kind, relation, before, beforeKind, after };
}

const builder = createEventBuilder({ prefix: 'walnats', database: 'shop', convert, now: () => 1764763200125 });
const text = (ev: OutboundEvent) => new TextDecoder().decode(ev.body);
const header = (ev: OutboundEvent, k: string) => ev.headers.find(([n]) => n === k)?.[1];
const SOURCE =
  '"source":{"connector":"walnats","db":"shop","schema":"public","table":"orders","lsn":"0/16B3748","commit_lsn":"0/16B37F0",' +
  `"seq":2,"txid":758,"ts_ms":${commitTimeToMs(commitTimeUs)},"snapshot":false}`;

describe('row events', () => {
  const big = '9223372036854775807';
  const cases: Array<{ name: string; change: RowChange; subject: string; body: string }> = [
    {
      name: 'insert',
      change: row('insert', orders, null, null, [big, '3', 'hello', '{"a": 1.50, "b":[1,2]}']),
      subject: 'walnats.shop.public.orders.insert',
      body: `{"op":"c","before":null,"after":{"id":${big},"qty":3,"notes":"hello","doc":{"a": 1.50, "b":[1,2]}},${SOURCE},"ts_ms":1764763200125}`,
    },
    {
      name: 'insert with nulls',
      change: row('insert', orders, null, null, ['1', null, null, null]),
      subject: 'walnats.shop.public.orders.insert',
      body: `{"op":"c","before":null,"after":{"id":1,"qty":null,"notes":null,"doc":null},${SOURCE},"ts_ms":1764763200125}`,
    },
    {
      name: 'update keeping its key, unchanged TOAST',
      change: row('update', orders, null, null, ['7', '3', undefined, undefined]),
      subject: 'walnats.shop.public.orders.update',
      body: `{"op":"u","before":null,"after":{"id":7,"qty":3},${SOURCE},"ts_ms":1764763200125,"unchanged":["notes","doc"]}`,
    },
    {
      name: 'update changing its key: before has key columns only, key fills unchanged key',
      change: row('update', orders, ['6', null, null, null], 'key', ['7', '3', undefined, '{}']),
      subject: 'walnats.shop.public.orders.update',
      body: `{"op":"u","before":{"id":6},"after":{"id":7,"qty":3,"doc":{}},${SOURCE},"ts_ms":1764763200125,"unchanged":["notes"]}`,
    },
    {
      name: 'update with a key tuple does not fill non-key unchanged columns from its nulls',
      change: row('update', orders, ['7', null, null, null], 'key', [undefined, '3', undefined, 'null']),
      subject: 'walnats.shop.public.orders.update',
      body: `{"op":"u","before":{"id":7},"after":{"id":7,"qty":3,"doc":null},${SOURCE},"ts_ms":1764763200125,"unchanged":["notes"]}`,
    },
    {
      name: 'update under REPLICA IDENTITY FULL: unchanged filled from old row',
      change: row('update', fullOrders, ['7', '2', 'long text', '[1]'], 'old', ['7', '3', undefined, undefined]),
      subject: 'walnats.shop.public.orders.update',
      body: `{"op":"u","before":{"id":7,"qty":2,"notes":"long text","doc":[1]},"after":{"id":7,"qty":3,"notes":"long text","doc":[1]},${SOURCE},"ts_ms":1764763200125}`,
    },
    {
      name: 'delete under default identity: key columns only',
      change: row('delete', orders, [big, null, null, null], 'key', null),
      subject: 'walnats.shop.public.orders.delete',
      body: `{"op":"d","before":{"id":${big}},"after":null,${SOURCE},"ts_ms":1764763200125}`,
    },
    {
      name: 'delete under FULL: whole old row, nulls kept',
      change: row('delete', fullOrders, ['7', null, 'x', '"s"'], 'old', null),
      subject: 'walnats.shop.public.orders.delete',
      body: `{"op":"d","before":{"id":7,"qty":null,"notes":"x","doc":"s"},"after":null,${SOURCE},"ts_ms":1764763200125}`,
    },
  ];

  it.each(cases)('$name', ({ change, subject, body }) => {
    const ev = builder.build(change)!;
    expect(ev.subject).toBe(subject);
    expect(text(ev)).toBe(body);
    expect(() => JSON.parse(text(ev))).not.toThrow();
    expect(ev.msgId).toBe('0/16B37F0:2');
    expect(ev.commitLsn).toBe(pos.commitLsn);
    expect(ev.seq).toBe(2);
    expect(Object.fromEntries(ev.headers)).toEqual({
      'Nats-Msg-Id': '0/16B37F0:2',
      'Walnats-Op': change.kind,
      'Walnats-Schema': 'public',
      'Walnats-Table': 'orders',
      'Walnats-Lsn': '0/16B3748',
      'Walnats-Commit-Lsn': '0/16B37F0',
      'Walnats-Seq': '2',
    });
  });

  it('keeps int8 digits and json text byte-exact', () => {
    const json = '{"k":"\\u0000", "n": 1.500000000000000000001, "big": 12345678901234567890}';
    const ev = builder.build(row('insert', orders, null, null, [big, '-2147483648', 'é', json]))!;
    expect(text(ev)).toContain(`"id":${big},`);
    expect(text(ev)).toContain(`"doc":${json}}`);
  });

  it('escapes hostile names in subject and headers, and JSON-quotes column names', () => {
    const rel: Relation = {
      oid: 1,
      schema: 'my schema',
      name: 'a.b*>\n',
      replicaIdentity: 'default',
      columns: [{ name: 'col "quoted"\n', typeOid: TEXT, typeMod: -1, isKey: true }],
    };
    const ev = builder.build({ ...pos, kind: 'insert', relation: rel, before: null, beforeKind: null, after: ['v'] })!;
    expect(ev.subject).toBe('walnats.shop.my%20schema.a%2Eb%2A%3E%0A.insert');
    expect(header(ev, 'Walnats-Table')).toBe('a%2Eb%2A%3E%0A');
    const parsed = JSON.parse(text(ev));
    expect(parsed.after).toEqual({ 'col "quoted"\n': 'v' });
    expect(parsed.source.table).toBe('a.b*>\n');
  });

  it('wraps converter errors with the column', () => {
    const b = createEventBuilder({
      prefix: 'walnats',
      database: 'shop',
      convert: () => {
        throw new Error('boom');
      },
    });
    expect(() => b.build(row('insert', orders, null, null, ['1', '2', '3', '4']))).toThrow(/column "id" of public\.orders/);
  });

  it('refuses binary values and tuples of the wrong width', () => {
    expect(() => builder.build(row('insert', orders, null, null, [new Uint8Array([1]), null, null, null]))).toThrow(/binary/);
    expect(() => builder.build(row('insert', orders, null, null, ['1']))).toThrow(/has 1 columns/);
  });
});

describe('special events', () => {
  it('truncate', () => {
    const ev = builder.build({ ...pos, kind: 'truncate', relation: orders, cascade: true, restartIdentity: false })!;
    expect(ev.subject).toBe('walnats.shop.public.orders.truncate');
    expect(text(ev)).toBe(
      `{"op":"t","before":null,"after":null,${SOURCE},"ts_ms":1764763200125,"truncate":{"cascade":true,"restart_identity":false}}`,
    );
    expect(header(ev, 'Walnats-Op')).toBe('truncate');
  });

  it('logical message with UTF-8 content', () => {
    const ev = builder.build({ ...pos, kind: 'message', prefix: 'audit.v1', content: new TextEncoder().encode('héllo'), transactional: true })!;
    expect(ev.subject).toBe('walnats.shop.$message.audit%2Ev1');
    const b = JSON.parse(text(ev));
    expect(b.op).toBe('m');
    expect(b.message).toEqual({ prefix: 'audit.v1', content: Buffer.from('héllo').toString('base64'), content_text: 'héllo', transactional: true });
    expect(b.source.schema).toBeNull();
    expect(header(ev, 'Walnats-Op')).toBe('message');
    expect(header(ev, 'Walnats-Message-Prefix')).toBe('audit%2Ev1');
    expect(ev.msgId).toBe('0/16B37F0:2');
  });

  it('logical message with binary content omits content_text', () => {
    const bytes = new Uint8Array([0xff, 0x00, 0xc3]);
    const ev = builder.build({ ...pos, kind: 'message', prefix: '', content: bytes, transactional: false })!;
    expect(ev.subject).toBe('walnats.shop.$message.%');
    const b = JSON.parse(text(ev));
    expect(b.message).toEqual({ prefix: '', content: '/wDD', transactional: false });
  });

  it('schema event sits just before the row event at the same seq', () => {
    const ev = builder.buildSchemaEvent({ ...pos, kind: 'relation', relation: fullOrders, previous: orders });
    expect(ev.subject).toBe('walnats.shop.$schema.public.orders');
    expect(ev.msgId).toBe('0/16B37F0:2:schema:16384');
    const b = JSON.parse(text(ev));
    expect(b.op).toBe('schema');
    expect(b.relation).toEqual({
      oid: 16384,
      schema: 'public',
      table: 'orders',
      replica_identity: 'full',
      columns: [
        { name: 'id', type_oid: 20, type_mod: -1, key: true },
        { name: 'qty', type_oid: 23, type_mod: -1, key: false },
        { name: 'notes', type_oid: 25, type_mod: -1, key: false },
        { name: 'doc', type_oid: 114, type_mod: -1, key: false },
      ],
    });
    expect(b.previous.replica_identity).toBe('default');
    expect(b.source.seq).toBe(2);
    const rowEv = builder.build(row('insert', orders, null, null, ['1', '1', '1', '1']))!;
    const a = positionFromHeaders(ev.headers)!;
    const r = positionFromHeaders(rowEv.headers)!;
    expect(a.kind).toBe('schema');
    expect(comparePositions(a, r)).toBeLessThan(0);
    expect(comparePositions(r, a)).toBeGreaterThan(0);
    expect(comparePositions(r, { ...r })).toBe(0);
    expect(comparePositions(a, { ...r, seq: 1 })).toBeGreaterThan(0);
  });

  it('relation, begin and commit give no event by default', () => {
    const changes: Change[] = [
      { ...pos, kind: 'relation', relation: orders, previous: undefined },
      { ...pos, kind: 'begin' },
      { ...pos, kind: 'commit', endLsn: pos.commitLsn + 8n, eventCount: 3 },
    ];
    for (const c of changes) expect(builder.build(c)).toBeNull();
  });

  it('transaction markers when enabled', () => {
    const b = createEventBuilder({ prefix: 'walnats', database: 'shop', convert, now: () => 5, transactionMarkers: true });
    const begin = b.build({ ...pos, kind: 'begin' })!;
    const commit = b.build({ ...pos, kind: 'commit', endLsn: parseLsn('0/16B3820'), eventCount: 3 })!;
    expect(begin.subject).toBe('walnats.shop.$tx.begin');
    expect(begin.msgId).toBe('0/16B37F0:0');
    expect(commit.subject).toBe('walnats.shop.$tx.commit');
    expect(commit.msgId).toBe('0/16B37F0:4');
    expect(JSON.parse(text(commit)).transaction).toEqual({ id: 758, commit_lsn: '0/16B37F0', event_count: 3, end_lsn: '0/16B3820' });
    expect(JSON.parse(text(begin)).op).toBe('begin');
    const p = [begin, commit].map((e) => positionFromHeaders(e.headers)!);
    expect(p[0]).toEqual({ commitLsn: pos.commitLsn, seq: 0, kind: 'begin' });
    expect(p[1]).toEqual({ commitLsn: pos.commitLsn, seq: 4, kind: 'commit' });
  });

  it('snapshot read', () => {
    const ev = builder.buildReadEvent(orders, ['1', '2', 'n', '{}'], { snapshotId: '00000003-00000002-1', rowIndex: 41, lsn: parseLsn('0/1000000') });
    expect(ev.subject).toBe('walnats.shop.public.orders.read');
    expect(ev.msgId).toBe('snapshot:00000003-00000002-1:16384:41');
    const b = JSON.parse(text(ev));
    expect(b.op).toBe('r');
    expect(b.after).toEqual({ id: 1, qty: 2, notes: 'n', doc: {} });
    expect(b.source.snapshot).toBe(true);
    expect(b.source.commit_lsn).toBe('0/1000000');
    expect(positionFromHeaders(ev.headers)).toEqual({
      commitLsn: parseLsn('0/1000000'),
      seq: 0,
      kind: 'read',
      snapshot: { id: '00000003-00000002-1', tableOid: 16384, row: 41 },
    });
  });
});

describe('positionFromHeaders', () => {
  it('null without walnats headers, error when malformed', () => {
    expect(positionFromHeaders([['Nats-Msg-Id', 'x']])).toBeNull();
    expect(positionFromHeaders(undefined)).toBeNull();
    expect(() => positionFromHeaders([['Walnats-Op', 'insert']])).toThrow(/incomplete/);
    expect(() => positionFromHeaders([['Walnats-Op', 'insert'], ['Walnats-Commit-Lsn', 'zz'], ['Walnats-Seq', '1']])).toThrow(/Commit-Lsn/);
    expect(() => positionFromHeaders([['Walnats-Op', 'nope'], ['Walnats-Commit-Lsn', '0/1'], ['Walnats-Seq', '1']])).toThrow(/Op/);
  });
  it('reads a get()-style header object', () => {
    const m = new Map([['Walnats-Op', 'delete'], ['Walnats-Commit-Lsn', '1/A'], ['Walnats-Seq', '9']]);
    expect(positionFromHeaders(m)).toEqual({ commitLsn: (1n << 32n) | 10n, seq: 9, kind: 'delete' });
  });
  it('converts commit time to ms since 1970', () => {
    expect(commitTimeToMs(0n)).toBe(946684800000);
    expect(commitTimeToMs(1_500n)).toBe(946684800001);
    expect(commitTimeToMs(-1n)).toBe(946684799999);
  });
});
