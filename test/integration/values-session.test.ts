/**
 * The pinned output settings on a real server whose database defaults differ from every one
 * of them: each is accepted in the startup packet's `options`, overrides the default (on
 * ordinary and walsender connections), and the value cases then print — both through a
 * SELECT and through pgoutput — exactly the text that converts to the expected JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPostgres, type PgServer } from '../harness/postgres.ts';
import { PINNED_OUTPUT_SETTINGS, pinnedOptionsString } from '../../src/values/session.ts';
import { textToJson } from '../../src/values/convert.ts';
import { builtinType } from '../../src/values/builtin.ts';
import { describeCatalogType } from '../../src/values/catalog.ts';
import { CASES } from '../fixtures/values/cases.ts';
import { observeCases } from '../fixtures/values/streamed.ts';

/** Database defaults that differ from every pinned setting. */
const HOSTILE_DEFAULTS: Record<string, string> = {
  DateStyle: 'German, DMY',
  TimeZone: 'Asia/Kolkata',
  IntervalStyle: 'postgres_verbose',
  extra_float_digits: '-3',
  bytea_output: 'escape',
  lc_monetary: 'C.utf8',
  client_encoding: 'LATIN1',
};

let server: PgServer;
let db: string;

beforeAll(async () => {
  server = await startPostgres();
  db = await server.createDatabase('values_session');
  for (const [name, value] of Object.entries(HOSTILE_DEFAULTS)) {
    await server.sql(`ALTER DATABASE "${db}" SET ${name} = '${value}'`);
  }
});

afterAll(async () => {
  await server?.destroy();
});

async function show(config: pg.ClientConfig): Promise<Record<string, string>> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    const out: Record<string, string> = {};
    for (const name of Object.keys(PINNED_OUTPUT_SETTINGS)) {
      const res = await c.query(`SHOW ${name}`);
      out[name] = String(Object.values(res.rows[0])[0]);
    }
    return out;
  } finally {
    await c.end();
  }
}

describe('pinned output settings', () => {
  it('the database defaults really differ from the pinned values', async () => {
    const defaults = await show({ connectionString: server.url(db) });
    for (const [name, pinned] of Object.entries(PINNED_OUTPUT_SETTINGS)) {
      // node-postgres (pg-protocol) always sends client_encoding=UTF8 in the startup packet
      // itself, so a client of it never sees the database's LATIN1 default.
      if (name === 'client_encoding') continue;
      expect(defaults[name], name).not.toBe(pinned);
    }
  });

  it('every setting is accepted via options and takes effect', async () => {
    expect(await show({ connectionString: server.url(db), options: pinnedOptionsString() })).toEqual(PINNED_OUTPUT_SETTINGS);
  });

  it('also on a walsender (replication=database) connection', async () => {
    const config = { connectionString: server.url(db), options: pinnedOptionsString(), replication: 'database' };
    expect(await show(config as pg.ClientConfig)).toEqual(PINNED_OUTPUT_SETTINGS);
  });

  it('each setting alone is accepted', async () => {
    for (const [name, value] of Object.entries(PINNED_OUTPUT_SETTINGS)) {
      const shown = await show({ connectionString: server.url(db), options: pinnedOptionsString({ [name]: value }) });
      expect(shown[name], name).toBe(value);
    }
  });

  it('value cases: snapshot and streamed text are identical and convert to the expected JSON', async () => {
    const { observed, types } = await observeCases(server.url(db), CASES);
    const rows = new Map(types.map((t) => [t.oid, t]));
    CASES.forEach((k, i) => {
      const o = observed[i];
      expect(o.streamed, k.name).toBe(o.text);
      const type = builtinType(o.oid) ?? describeCatalogType(o.oid, (oid) => rows.get(oid));
      expect(textToJson(o.streamed, type), k.name).toBe(k.expected);
    });
  });
});
