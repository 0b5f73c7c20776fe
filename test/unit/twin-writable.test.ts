import { describe, expect, it } from 'vitest';
import { ack, checkWritable, desiredVersion, WRITABLE_PROPERTIES } from '../../agent/twin/writable.js';
import { stringMatching } from '../support/matchers.js';

describe('the writable properties\' checks', () => {
  it('knows the telemetry interval, the log level and the hardening profile', () => {
    expect(WRITABLE_PROPERTIES).toEqual(['telemetryIntervalSeconds', 'logLevel', 'hardeningProfile']);
  });

  it('takes the telemetry interval from 10 s to a day, as the value it checked', () => {
    expect(checkWritable('telemetryIntervalSeconds', 10)).toEqual({ ok: true, value: 10 });
    expect(checkWritable('telemetryIntervalSeconds', 86_400)).toEqual({ ok: true, value: 86_400 });
  });

  it.each([
    [9, 'expected whole seconds from 10 to 86400, got 9'],
    [86_401, 'expected whole seconds from 10 to 86400, got 86401'],
    [30.5, 'expected whole seconds from 10 to 86400, got 30.5'],
    ['30', 'expected whole seconds from 10 to 86400, got "30"'],
    [-0.0000012345678901234567, 'expected whole seconds from 10 to 86400, got -0.000001234567890123456'],
    [true, 'expected whole seconds from 10 to 86400, got a boolean'],
    [{ seconds: 30 }, 'expected whole seconds from 10 to 86400, got a object'],
    [[30], 'expected whole seconds from 10 to 86400, got an array'],
    [null, 'expected whole seconds from 10 to 86400, got null'],
  ])('refuses the telemetry interval %j: %s', (value, reason) => {
    expect(checkWritable('telemetryIntervalSeconds', value)).toEqual({ ok: false, reason });
  });

  it.each(['debug', 'info', 'warn', 'error'])('takes the log level %s', (level) => {
    expect(checkWritable('logLevel', level)).toEqual({ ok: true, value: level });
  });

  it.each([
    ['verbose', 'expected one of debug, info, warn, error, got "verbose"'],
    [3, 'expected one of debug, info, warn, error, got 3'],
    ['x'.repeat(41), 'expected one of debug, info, warn, error, got a string of 41 characters'],
  ])('refuses the log level %j: %s', (value, reason) => {
    expect(checkWritable('logLevel', value)).toEqual({ ok: false, reason });
  });

  it('quotes a refused string of up to 40 characters, and only counts a longer one', () => {
    expect(checkWritable('logLevel', 'y'.repeat(40))).toEqual({ ok: false, reason: `expected one of debug, info, warn, error, got "${'y'.repeat(40)}"` });
  });

  it('takes a profile name and refuses anything that could be a path', () => {
    expect(checkWritable('hardeningProfile', 'site-2_b')).toEqual({ ok: true, value: 'site-2_b' });
    expect(checkWritable('hardeningProfile', '../strict')).toEqual({
      ok: false, reason: 'expected a built-in or site profile name (letters, digits, _ and -, at most 64), got "../strict"',
    });
    expect(checkWritable('hardeningProfile', 7)).toMatchObject({ ok: false, reason: stringMatching(/got 7$/) });
  });

  it('acknowledges as Azure does: value, status, version and description', () => {
    expect(ack('warn', 200, 4, 'applied')).toEqual({ value: 'warn', ac: 200, av: 4, ad: 'applied' });
  });

  it.each([
    [{ $version: 12 }, 12],
    [{}, 0],
    [{ $version: '12' }, 0],
    [{ $version: 1.5 }, 0],
    [{ $version: 2 ** 60 }, 0],
  ])('reads the desired version of %j as %i', (doc, version) => {
    expect(desiredVersion(doc)).toBe(version);
  });
});
