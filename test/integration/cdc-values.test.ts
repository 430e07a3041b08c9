/**
 * Every value type of DESIGN.md's table, through the whole daemon: what reaches JetStream is
 * the lossless JSON text, byte for byte (the raw body is checked, not a re-parsed number).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { startNats, type NatsServer } from '../harness/nats.ts';
import { startTestDaemon, type TestDaemon } from '../harness/cdc.ts';
import { waitForSubject } from '../harness/stream.ts';
import { waitFor } from '../harness/ports.ts';
import { escapeToken } from '../../src/events/subject.ts';

let pgs: PgServer;
let nats: NatsServer;
let db: string;
let cdc: TestDaemon;

// [column type, SQL literal, expected JSON text in `after`]
const CASES: Array<[string, string, string]> = [
  ['bool', 'true', 'true'],
  ['int2', '-32768', '-32768'],
  ['int4', '2147483647', '2147483647'],
  ['int8', '9007199254740993', '9007199254740993'],
  ['int8', '-9223372036854775808', '-9223372036854775808'],
  ['oid', '4294967295', '4294967295'],
  ['float4', '0.1', '0.1'],
  ['float8', '0.1', '0.1'],
  ['float8', "'NaN'", '"NaN"'],
  ['float8', "'Infinity'", '"Infinity"'],
  ['float8', "'-Infinity'", '"-Infinity"'],
  ['float8', '1e300', '1e+300'],
  ['numeric', '1.2300000', '"1.2300000"'],
  ['numeric', "'NaN'", '"NaN"'],
  ['numeric(30,10)', '12345678901234567890.0123456789', '"12345678901234567890.0123456789"'],
  ['money', '-1.50', '"-1.50"'],
  ['money', '1234567.89', '"1234567.89"'],
  ['text', `E'quote " backslash \\\\ newline \\n tab \\t ü 😀'`, '"quote \\" backslash \\\\ newline \\n tab \\t ü 😀"'],
  ['varchar(10)', "'abc'", '"abc"'],
  ['char(5)', "'ab'", '"ab   "'],
  ['uuid', "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"'],
  ['inet', "'192.168.0.1'", '"192.168.0.1"'],
  ['cidr', "'10.0.0.0/8'", '"10.0.0.0/8"'],
  ['macaddr', "'08:00:2b:01:02:03'", '"08:00:2b:01:02:03"'],
  ['json', `'{"a": "\\u0000 \\u00fc", "b": [1, 2.50]}'`, '{"a": "\\u0000 \\u00fc", "b": [1, 2.50]}'],
  ['jsonb', `'{"price": 1.50, "n": null}'`, '{"n": null, "price": 1.50}'],
  ['bytea', "'\\x00ff10'", '"AP8Q"'],
  ['date', "'2024-02-29'", '"2024-02-29"'],
  ['date', "'infinity'", '"infinity"'],
  ['date', "'-infinity'", '"-infinity"'],
  ['date', "'0044-03-15 BC'", '"-0043-03-15"'],
  ['timestamp', "'2024-02-29 13:45:00.123456'", '"2024-02-29T13:45:00.123456"'],
  ['timestamptz', "'2024-02-29 13:45:00.123456+01'", '"2024-02-29T12:45:00.123456Z"'],
  ['timestamptz', "'infinity'", '"infinity"'],
  ['interval', "'1 month'", '"P1M"'],
  ['interval', "'30 days'", '"P30D"'],
  ['interval', "'720 hours'", '"PT720H"'],
  ['time', "'13:45:00.5'", '"13:45:00.5"'],
  ['timetz', "'13:45:00+02'", '"13:45:00+02"'],
  ['int4[]', "'{{1,NULL},{3,4}}'", '[[1,null],[3,4]]'],
  ['text[]', `'{"a,b",NULL,"NULL","","x\\"y"}'`, '["a,b",null,"NULL","","x\\"y"]'],
  ['int8[]', "'{9007199254740993}'", '[9007199254740993]'],
  ['float8[]', "'{NaN,Infinity,1.5}'", '["NaN","Infinity",1.5]'],
  ['numeric[]', "'{1.10,NaN}'", '["1.10","NaN"]'],
  ['jsonb[]', `ARRAY['{"a":1}'::jsonb, 'null'::jsonb]`, '[{"a": 1},null]'],
  ['bytea[]', "ARRAY['\\x01'::bytea]", '["AQ=="]'],
  ['timestamptz[]', "ARRAY['2024-01-01 00:00:00+00'::timestamptz]", '["2024-01-01T00:00:00Z"]'],
  ['int4[]', "'[0:1]={7,8}'", '{"lower_bounds":[0],"values":[7,8]}'],
  ['int4range', "'[1,5)'", '"[1,5)"'],
  ['mood', "'happy'", '"happy"'],
  ['mood[]', "'{happy,sad}'", '["happy","sad"]'],
  ['posint', '42', '42'],
];

beforeAll(async () => {
  [pgs, nats] = await Promise.all([startPostgres(), startNats()]);
  db = await pgs.createDatabase('vals');
  await pgs.sql(`CREATE TYPE mood AS ENUM ('happy', 'sad'); CREATE DOMAIN posint AS int4 CHECK (VALUE > 0)`, [], db);
  const cols = CASES.map(([type], i) => `c${i} ${type}`).join(', ');
  await pgs.sql(`CREATE TABLE every_type (id int PRIMARY KEY, ${cols})`, [], db);
  cdc = await startTestDaemon(pgs.url(db), nats.url, db, { slot: 'cdc_values' });
  await waitFor('daemon streaming', async () => cdc.daemon.ready() || undefined);
});

afterAll(async () => {
  await cdc?.stop();
  await Promise.all([pgs?.destroy(), nats?.destroy()]);
});

describe('values through the daemon', () => {
  it('every DESIGN value type arrives as its lossless JSON text', async () => {
    // One row per case, so a failure names the case; a NULL everywhere else.
    for (let i = 0; i < CASES.length; i++) {
      await pgs.sql(`INSERT INTO every_type (id, c${i}) VALUES (${i}, ${CASES[i][1]})`, [], db);
    }
    const events = await waitForSubject(cdc.nc, cdc.stream, `walnats.${escapeToken(db)}.public.every_type.insert`, CASES.length);
    expect(events).toHaveLength(CASES.length);
    for (let i = 0; i < CASES.length; i++) {
      const [type, literal, expected] = CASES[i];
      const raw = events[i].raw;
      const start = raw.indexOf(`"c${i}":`) + `"c${i}":`.length;
      const next = raw.indexOf(`,"c${i + 1}":`, start);
      const fragment = raw.slice(start, next >= 0 ? next : raw.indexOf('},"source"', start));
      expect(fragment, `${type} ${literal}`).toBe(expected);
      expect(() => JSON.parse(raw)).not.toThrow();
    }
  });

  it('NULLs stay null and other columns are untouched', async () => {
    await pgs.sql(`INSERT INTO every_type (id) VALUES (1000)`, [], db);
    const [ev] = (await waitForSubject(cdc.nc, cdc.stream, `walnats.${escapeToken(db)}.public.every_type.insert`, CASES.length + 1)).slice(-1);
    expect(Object.values(ev.body.after).filter((v) => v !== null)).toEqual([1000]);
  });
});
