import { describe, expect, it } from 'vitest';
import { parseCopyData, pgMicrosToUnixMs, protocolVersionFor, standbyStatusUpdate } from '../../src/replication/protocol.ts';

describe('replication sub-protocol', () => {
  it('parses XLogData and keeps the payload as a view of the chunk', () => {
    const chunk = Buffer.from('77' + '0000000100000010' + '0000000100000020' + '0000000000000000' + '42', 'hex');
    const msg = parseCopyData(chunk);
    expect(msg).toMatchObject({ type: 'xlogdata', walStart: 0x1_00000010n, walEnd: 0x1_00000020n });
    expect(msg.type === 'xlogdata' && Array.from(msg.payload)).toEqual([0x42]);
  });
  it('parses a keepalive that requests a reply', () => {
    const chunk = Buffer.from('6b' + '00000000016B3748' + '0000000000000000' + '01', 'hex');
    expect(parseCopyData(chunk)).toEqual({ type: 'keepalive', walEnd: 0x16b3748n, replyRequested: true });
  });
  it.each([
    ['unknown tag', '7a00', /unknown replication message 0x7a \('z'\)/],
    ['short XLogData', '7700', /XLogData too short/],
    ['short keepalive', '6b00', /keepalive too short/],
  ])('rejects %s', (_name, hex, err) => {
    expect(() => parseCopyData(Buffer.from(hex, 'hex'))).toThrow(err);
  });
  it('builds a standby status update with Postgres-epoch time', () => {
    const buf = standbyStatusUpdate(3n, 2n, 1n, 946_684_800_000 + 1500, true);
    expect(buf[0]).toBe(0x72);
    expect(buf.readBigUInt64BE(1)).toBe(3n);
    expect(buf.readBigUInt64BE(9)).toBe(2n);
    expect(buf.readBigUInt64BE(17)).toBe(1n);
    expect(buf.readBigInt64BE(25)).toBe(1_500_000n);
    expect(buf[33]).toBe(1);
  });
  it('converts Postgres timestamps to Unix milliseconds', () => {
    expect(pgMicrosToUnixMs(0n)).toBe(946_684_800_000);
    expect(pgMicrosToUnixMs(1_999n)).toBe(946_684_800_001);
  });
  it.each([
    [130012, 1],
    [140005, 2],
    [150010, 3],
    [160002, 4],
    [180000, 4],
  ])('server %i speaks pgoutput v%i', (v, p) => expect(protocolVersionFor(v)).toBe(p));
});
