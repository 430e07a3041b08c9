import { describe, expect, it } from 'vitest';
import { PINNED_OUTPUT_SETTINGS, pinnedOptionsString } from '../../src/values/session.ts';

describe('pinned output settings', () => {
  it('pins what DESIGN.md names', () => {
    expect(PINNED_OUTPUT_SETTINGS).toEqual({
      DateStyle: 'ISO, YMD',
      TimeZone: 'UTC',
      IntervalStyle: 'iso_8601',
      extra_float_digits: '1',
      bytea_output: 'hex',
      lc_monetary: 'C',
      client_encoding: 'UTF8',
    });
  });

  it('builds the options string, escaping blanks with a backslash', () => {
    expect(pinnedOptionsString()).toBe(
      '-c DateStyle=ISO,\\ YMD -c TimeZone=UTC -c IntervalStyle=iso_8601 -c extra_float_digits=1 ' +
        '-c bytea_output=hex -c lc_monetary=C -c client_encoding=UTF8',
    );
  });

  it('escapes backslashes and other whitespace too', () => {
    expect(pinnedOptionsString({ search_path: 'a\\b\tc' })).toBe('-c search_path=a\\\\b\\\tc');
  });
});
