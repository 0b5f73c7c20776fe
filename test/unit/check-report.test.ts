import { describe, expect, it } from 'vitest';
import { exitCodeFor, formatHuman, formatJson, summarize } from '../../agent/check/report.js';
import { fail, pass, warn, type CheckResult } from '../../agent/check/result.js';

/** A pass, a warning with a hint and a failure with a hint, as a run of checks returns them. */
function sample(): CheckResult[] {
  return [
    pass('tpm', 'TPM reachable (swtpm:host=127.0.0.1,port=2321): EK present at 0x81010001'),
    warn('identity', 'no identity key at 0x81000100: not provisioned yet', 'run `iot-agent provision`'),
    fail('dps-tls', 'DPS a:443: connection refused', 'check the firewall'),
  ];
}

describe('check: report', () => {
  it('prints one aligned line per check with its hint, then a summary', () => {
    expect(formatHuman(sample())).toBe([
      'PASS  tpm        TPM reachable (swtpm:host=127.0.0.1,port=2321): EK present at 0x81010001',
      'WARN  identity   no identity key at 0x81000100: not provisioned yet  hint: run `iot-agent provision`',
      'FAIL  dps-tls    DPS a:443: connection refused  hint: check the firewall',
      '3 checks: 1 passed, 1 warned, 1 failed: the device is not ready',
      '',
    ].join('\n'));
  });

  it('keeps a message with a line break on one line', () => {
    expect(formatHuman([fail('config', 'bad\n  thing')]).split('\n')[0]).toBe('FAIL  config     bad thing');
  });

  it('prints exactly one JSON object with id, status, message and hint only where there is one', () => {
    const results = sample();
    const text = formatJson(results);
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    const parsed = JSON.parse(text) as { checks: Record<string, unknown>[] };
    expect(Object.keys(parsed)).toEqual(['checks']);
    expect(parsed.checks[0]).toEqual({ id: 'tpm', status: 'pass', message: results[0]!.message });
    expect(parsed.checks[2]).toEqual({ id: 'dps-tls', status: 'fail', message: 'DPS a:443: connection refused', hint: 'check the firewall' });
  });

  it('exits 0 with warnings only and 1 when anything fails', () => {
    const results = sample();
    expect(exitCodeFor(results.slice(0, 2))).toBe(0);
    expect(exitCodeFor(results)).toBe(1);
  });

  it('says all good when everything passes', () => {
    expect(summarize([sample()[0]!])).toBe('1 checks: 1 passed, 0 warned, 0 failed: all good');
  });
});

describe('check: report verdicts', () => {
  it('says nothing fails when there are warnings only, and counts each status', () => {
    expect(summarize([pass('tpm', 'a'), warn('state', 'b'), warn('hub-dns', 'c')])).toBe('3 checks: 1 passed, 2 warned, 0 failed: nothing fails');
    expect(summarize([fail('tpm', 'a'), fail('state', 'b'), pass('clock', 'c')])).toBe('3 checks: 1 passed, 0 warned, 2 failed: the device is not ready');
  });

  it('prints no hint where there is none or it is empty, in text and JSON', () => {
    const quiet = [warn('state', 'no cached assignment'), { id: 'clock' as const, status: 'pass' as const, message: 'ok', hint: '' }];
    expect(formatHuman(quiet).split('\n').slice(0, 2)).toEqual(['WARN  state      no cached assignment', 'PASS  clock      ok']);
    expect(JSON.parse(formatJson(quiet))).toEqual({ checks: [{ id: 'state', status: 'warn', message: 'no cached assignment' }, { id: 'clock', status: 'pass', message: 'ok' }] });
  });

  it('keeps an id as long as the column on one line with one space after it', () => {
    expect(formatHuman([pass('state-dir', 'x')]).split('\n')[0]).toBe('PASS  state-dir  x');
  });

  it('gives a result a hint key only when there is a hint', () => {
    expect(Object.keys(warn('state', 'm'))).toEqual(['id', 'status', 'message']);
    expect(Object.keys(fail('state', 'm'))).toEqual(['id', 'status', 'message']);
    expect(warn('state', 'm', 'h')).toStrictEqual({ id: 'state', status: 'warn', message: 'm', hint: 'h' });
    expect(fail('state', 'm', 'h')).toStrictEqual({ id: 'state', status: 'fail', message: 'm', hint: 'h' });
  });

  it('exits 0 for an empty report', () => {
    expect(exitCodeFor([])).toBe(0);
    expect(summarize([])).toBe('0 checks: 0 passed, 0 warned, 0 failed: all good');
  });
});
