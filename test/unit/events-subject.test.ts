import { describe, expect, it } from 'vitest';
import {
  defaultStreamName,
  escapeToken,
  heartbeatSubject,
  messageSubject,
  parseSubject,
  parseTableSubject,
  schemaSubject,
  streamSubjects,
  TABLE_OPS,
  tableSubject,
  txSubject,
  unescapeToken,
  validatePrefix,
} from '../../src/events/subject.ts';

const hostile = [
  'orders',
  'Orders_2024-q1',
  '',
  '%',
  '%25',
  '%%',
  'a.b',
  '.',
  '..',
  'has space',
  ' leading',
  'trailing ',
  '*',
  '>',
  'a*b>c',
  '$message',
  '$tx',
  '$',
  '_INBOX',
  'tab\there',
  'new\nline',
  'cr\rlf',
  'nul\u0000byte',
  'quote"and\'apostrophe',
  'back\\slash/and/slash',
  'ünïcödé',
  'Straße',
  '日本語テーブル',
  'emoji 🐘🚀',
  'zwj 👩‍👩‍👧',
  'x'.repeat(63),
  '🐘'.repeat(16),
  'é'.repeat(1000),
  '-',
  '_',
  '0',
];

describe('escapeToken / unescapeToken', () => {
  it.each(hostile.map((n) => [JSON.stringify(n).slice(0, 40), n]))('round-trips %s', (_label, name) => {
    const tok = escapeToken(name);
    expect(tok).toMatch(/^[A-Za-z0-9_%-]+$/);
    expect(tok.startsWith('$')).toBe(false);
    expect(unescapeToken(tok)).toBe(name);
  });

  it('keeps safe characters and escapes the rest per UTF-8 byte, upper-case', () => {
    expect(escapeToken('orders_2024-q1')).toBe('orders_2024-q1');
    expect(escapeToken('a.b')).toBe('a%2Eb');
    expect(escapeToken('%')).toBe('%25');
    expect(escapeToken('é')).toBe('%C3%A9');
    expect(escapeToken('🐘')).toBe('%F0%9F%90%98');
    expect(escapeToken('$x y')).toBe('%24x%20y');
  });

  it('writes the empty name as a lone %', () => {
    expect(escapeToken('')).toBe('%');
    expect(unescapeToken('%')).toBe('');
  });

  it('is injective over the hostile names', () => {
    const toks = new Set(hostile.map(escapeToken));
    expect(toks.size).toBe(new Set(hostile).size);
  });

  it.each([
    ['', 'empty'],
    ['%2', 'truncated escape'],
    ['%2e', 'lower-case hex'],
    ['%G0', 'not hex'],
    ['%41', 'escaped safe character'],
    ['a.b', 'unescaped dot'],
    ['a b', 'unescaped space'],
    ['%C3', 'incomplete UTF-8'],
    ['%FF', 'invalid UTF-8'],
    ['%%', 'double percent'],
    ['$x', 'dollar'],
  ])('rejects malformed %j (%s)', (tok) => {
    expect(() => unescapeToken(tok)).toThrow(/invalid escaped token/);
  });
});

describe('subjects', () => {
  it('builds table subjects with five tokens for a one-token prefix', () => {
    expect(tableSubject('walnats', 'shop', 'public', 'orders', 'insert')).toBe('walnats.shop.public.orders.insert');
    const s = tableSubject('walnats', 'my.db', 'we ird', 'a.b*>', 'update');
    expect(s.split('.')).toHaveLength(5);
    expect(parseTableSubject('walnats', s)).toEqual({ db: 'my.db', schema: 'we ird', table: 'a.b*>', op: 'update' });
  });

  it('accepts a dotted prefix', () => {
    const s = tableSubject('acme.cdc', 'shop', 'public', 'orders', 'delete');
    expect(s).toBe('acme.cdc.shop.public.orders.delete');
    expect(parseTableSubject('acme.cdc', s)).toEqual({ db: 'shop', schema: 'public', table: 'orders', op: 'delete' });
    expect(parseTableSubject('acme', s)).toBeNull();
  });

  it.each(['', 'a..b', '.a', 'a.', 'a.*', 'a.>', 'a b', '$JS', '_INBOX.x', 'a\tb'])('rejects prefix %j', (p) => {
    expect(() => validatePrefix(p)).toThrow(/invalid subject prefix/);
    expect(() => tableSubject(p, 'db', 's', 't', 'insert')).toThrow(/invalid subject prefix/);
  });

  it('rejects unknown ops', () => {
    expect(() => tableSubject('w', 'db', 's', 't', 'upsert' as never)).toThrow(/invalid table op/);
  });

  it('builds and parses reserved subjects', () => {
    expect(messageSubject('walnats', 'shop', 'audit.v1')).toBe('walnats.shop.$message.audit%2Ev1');
    expect(txSubject('walnats', 'shop', 'begin')).toBe('walnats.shop.$tx.begin');
    expect(schemaSubject('walnats', 'shop', 'public', 'orders')).toBe('walnats.shop.$schema.public.orders');
    expect(heartbeatSubject('walnats', 'shop')).toBe('walnats.shop.$heartbeat');
    expect(parseSubject('walnats', 'walnats.shop.$message.audit%2Ev1')).toEqual({ kind: 'message', db: 'shop', prefix: 'audit.v1' });
    expect(parseSubject('walnats', 'walnats.shop.$tx.commit')).toEqual({ kind: 'tx', db: 'shop', marker: 'commit' });
    expect(parseSubject('walnats', 'walnats.shop.$schema.public.orders')).toEqual({
      kind: 'schema',
      db: 'shop',
      schema: 'public',
      table: 'orders',
    });
    expect(parseSubject('walnats', 'walnats.shop.$heartbeat')).toEqual({ kind: 'heartbeat', db: 'shop' });
    expect(parseTableSubject('walnats', 'walnats.shop.$schema.public.orders')).toBeNull();
    expect(parseSubject('walnats', 'walnats.shop.public.orders.upsert')).toBeNull();
    expect(parseSubject('walnats', 'other.shop.public.orders.insert')).toBeNull();
  });

  it('never lets a reserved subject equal a table subject', () => {
    const names = hostile.slice(0, 30);
    const table = new Set<string>();
    for (const s of names) for (const t of names) for (const op of TABLE_OPS) table.add(tableSubject('walnats', 'db', s, t, op));
    const reserved: string[] = [txSubject('walnats', 'db', 'begin'), txSubject('walnats', 'db', 'commit'), heartbeatSubject('walnats', 'db')];
    for (const s of names) {
      reserved.push(messageSubject('walnats', 'db', s));
      for (const t of names) reserved.push(schemaSubject('walnats', 'db', s, t));
    }
    for (const r of reserved) expect(table.has(r)).toBe(false);
    // and each table subject parses back as a table subject
    for (const s of table) expect(parseSubject('walnats', s)?.kind).toBe('table');
  });

  it('gives one stream subject per database', () => {
    expect(streamSubjects('walnats', 'shop')).toEqual(['walnats.shop.>']);
    expect(streamSubjects('walnats', 'a.b')).toEqual(['walnats.a%2Eb.>']);
  });
});

describe('defaultStreamName', () => {
  const valid = /^[A-Za-z0-9_-]+$/; // no `%`: nats-server formats stream names into ack subjects
  it('is readable for plain names', () => {
    expect(defaultStreamName('walnats', 'shop')).toBe('walnats_shop');
  });
  it('is valid and collision-free across hostile prefixes and databases', () => {
    const pairs: Array<[string, string]> = [
      ['walnats', 'a_b'],
      ['walnats_a', 'b'],
      ['walnats.a', 'b'],
      ['walnats', 'a.b'],
      ['walnats', 'a%5Fb'],
      ['a', 'b_c'],
      ['a_b', 'c'],
    ];
    for (const db of hostile) pairs.push(['walnats', db], ['x.y', db]);
    const names = new Map<string, string>();
    for (const [p, d] of pairs) {
      const n = defaultStreamName(p, d);
      expect(n).toMatch(valid);
      expect(n.length).toBeLessThanOrEqual(200);
      const key = JSON.stringify([p, d]);
      const prev = names.get(n);
      if (prev !== undefined) expect(prev).toBe(key);
      names.set(n, key);
      expect(defaultStreamName(p, d)).toBe(n); // deterministic
    }
  });
});
