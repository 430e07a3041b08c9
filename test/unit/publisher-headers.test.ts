/**
 * The publisher writes each event's header block itself (bypassing MsgHdrs.set, which
 * validates and looks up each key one by one); it must be byte-identical to what nats.js
 * encodes for the same `set` calls, and fall back to nats.js's rules (trim, errors, repeated
 * names) for anything unusual.
 */
import { describe, expect, it } from 'vitest';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { headerBlock } from '../../src/publisher/publisher.ts';

const td = new TextDecoder();

function reference(pairs: Array<[string, string]>, stream: string, lastSeq?: string, lastMsgId?: string): string {
  const h = natsHeaders();
  for (const [k, v] of pairs) h.set(k, v);
  h.set('Nats-Expected-Stream', stream);
  if (lastSeq !== undefined) h.set('Nats-Expected-Last-Sequence', lastSeq);
  if (lastMsgId !== undefined) h.set('Nats-Expected-Last-Msg-Id', lastMsgId);
  return td.decode((h as unknown as { encode(): Uint8Array }).encode());
}

function fast(pairs: Array<[string, string]>, stream: string, lastSeq?: string, lastMsgId?: string): string {
  return td.decode((headerBlock(pairs, `\r\nNats-Expected-Stream: ${stream}`, lastSeq, lastMsgId) as unknown as { encode(): Uint8Array }).encode());
}

const event: Array<[string, string]> = [
  ['Nats-Msg-Id', '16/B374D848:3'],
  ['Walnats-Op', 'insert'],
  ['Walnats-Schema', 'public'],
  ['Walnats-Table', 'my%20table'],
  ['Walnats-Lsn', '16/B374D700'],
  ['Walnats-Commit-Lsn', '16/B374D848'],
  ['Walnats-Seq', '3'],
];

describe('publisher header block', () => {
  it('is byte-identical to MsgHdrs for an event', () => {
    expect(fast(event, 'WALNATS_DB', '41')).toBe(reference(event, 'WALNATS_DB', '41'));
    expect(fast(event, 'WALNATS_DB')).toBe(reference(event, 'WALNATS_DB'));
    expect(fast(event, 'S', '0')).toMatch(/^NATS\/1\.0\r\nNats-Msg-Id: 16\/B374D848:3\r\n.*\r\nNats-Expected-Last-Sequence: 0\r\n\r\n$/s);
  });

  it('names the previous event as the stream\'s last message, byte-identical to MsgHdrs', () => {
    expect(fast(event, 'S', '41', '16/B374D848:2')).toBe(reference(event, 'S', '41', '16/B374D848:2'));
    expect(fast(event, 'S', '41', '16/B374D848:2')).toMatch(/\r\nNats-Expected-Last-Sequence: 41\r\nNats-Expected-Last-Msg-Id: 16\/B374D848:2\r\n\r\n$/);
    // a value MsgHdrs would trim, and a user pair of the reserved name, go its way
    expect(fast(event, 'S', '41', ' x ')).toBe(reference(event, 'S', '41', ' x '));
    const reserved: Array<[string, string]> = [['Nats-Expected-Last-Msg-Id', 'mine'], ['X', 'y']];
    expect(fast(reserved, 'S', '1', 'prev')).toBe(reference(reserved, 'S', '1', 'prev'));
  });

  it('matches MsgHdrs on unusual input: empty, padded, non-ASCII values, repeated names, reserved names', () => {
    const cases: Array<Array<[string, string]>> = [
      [],
      [['A', '']],
      [['A', ' padded ']],
      [['A', '\tx']],
      [['A', 'x\u00a0']],
      [['A', 'é ü']],
      [['A', '1'], ['B', '2'], ['A', '3']],
      [['a-lower', 'x']],
      [['Nats-Expected-Stream', 'other'], ['X', 'y']],
      [['Nats-Expected-Last-Sequence', '99']],
    ];
    for (const c of cases) {
      expect(fast(c, 'S', '7')).toBe(reference(c, 'S', '7'));
      expect(fast(c, 'S')).toBe(reference(c, 'S'));
    }
  });

  it('rejects what MsgHdrs rejects', () => {
    for (const c of [[['Bad:Name', 'x']], [['Bad Name', 'x']], [['A', 'x\r\ny']], [['A', 'x\ny']]] as Array<Array<[string, string]>>) {
      expect(() => reference(c, 'S')).toThrow();
      expect(() => fast(c, 'S')).toThrow();
    }
  });
});
