import { describe, expect, it } from 'vitest';
import { AgentError, ExitCode } from '../../agent/errors.js';
import { FAST_BACKOFF, parseTestTimings, runtimeOverrides } from '../../agent/runtime-overrides.js';
import { stringContaining } from '../support/matchers.js';

describe('runtime overrides from the environment', () => {
  it('takes nothing from an empty environment', () => {
    expect(runtimeOverrides({})).toEqual({});
  });

  it('takes IOT_AGENT_TPM, trimmed, and refuses a bad one naming the variable', () => {
    expect(runtimeOverrides({ IOT_AGENT_TPM: ' swtpm:port=2400 ' }).tpmTransport).toBe('swtpm:port=2400');
    expect(runtimeOverrides({ IOT_AGENT_TPM: '   ' }).tpmTransport).toBeUndefined();
    expect(() => runtimeOverrides({ IOT_AGENT_TPM: 'tpm0' })).toThrow(/^IOT_AGENT_TPM: invalid TPM transport "tpm0"/);
  });

  it('reads test timings as key=value pairs, later keys winning', () => {
    expect(parseTestTimings('keepAlive=5,backoff=fast,spread=0,minReprovision=0,keepAlive=3')).toEqual({
      keepAliveSeconds: 3, backoff: FAST_BACKOFF, reconnectSpreadMs: 0, minReprovisionSeconds: 0,
    });
    expect(parseTestTimings('tokenLifetime=8')).toEqual({ tokenLifetimeSeconds: 8, tokenRenewalMarginSeconds: 2 });
    expect(parseTestTimings('backoff=fast,backoff=default').backoff).toBeUndefined();
    expect(parseTestTimings(' , ')).toEqual({});
    expect(parseTestTimings('hubProbe=3')).toEqual({ hubProbeSeconds: 3 });
  });

  it.each([
    ['0,0,5', '"0": expected one of tokenLifetime=…'],
    ['keepAlive', '"keepAlive": expected one of'],
    ['keepAlive=', 'keepAlive=: expected whole seconds from 1 to 3600'],
    ['keepAlive=0', 'keepAlive=0: expected whole seconds'],
    ['keepAlive=1.5', 'keepAlive=1.5'],
    ['keepAlive=-1', 'keepAlive=-1'],
    ['spread=9999999', 'spread=9999999'],
    ['hubProbe=0', 'hubProbe=0: expected whole seconds from 1 to 600'],
    ['backoff=slow', 'backoff=slow: expected backoff=fast or backoff=default'],
    ['tokenLifetime=4,renewalMargin=4', 'renewalMargin must be below tokenLifetime'],
    ['colour=blue', '"colour=blue": expected one of'],
  ])('refuses IOT_AGENT_TEST_TIMINGS %j', (spec, message) => {
    expect(() => parseTestTimings(spec)).toThrow(`IOT_AGENT_TEST_TIMINGS ${message}`);
  });
});

describe('runtime overrides: each knob and its bounds', () => {
  it('refuses a bad IOT_AGENT_TPM as a usage error, with the transport\'s hint', () => {
    let caught: unknown;
    try {
      runtimeOverrides({ IOT_AGENT_TPM: 'tpm0' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AgentError);
    expect(caught).toMatchObject({ exitCode: ExitCode.usage, hint: stringContaining('swtpm:host=') });
  });

  it('takes the hardening sandbox and the recorded reboot from their variables, and nothing else', () => {
    const overrides = runtimeOverrides({
      IOT_AGENT_HARDENING_TEST: 'root=/tmp/sandbox,netns=iot-test-1',
      IOT_AGENT_REBOOT_COMMAND: '["touch","/tmp/rebooted"]',
      IOT_AGENT_TEST_TIMINGS: 'keepAlive=5',
      PATH: '/usr/bin',
    });
    expect(overrides).toEqual({
      hardeningSite: { root: '/tmp/sandbox', netns: 'iot-test-1', backend: 'auto' },
      reboot: { argv: ['touch', '/tmp/rebooted'] },
      timings: { keepAliveSeconds: 5 },
    });
  });

  it.each([
    ['tokenLifetime', 2, 86_400, 'tokenLifetimeSeconds'],
    ['renewalMargin', 1, 86_400, 'tokenRenewalMarginSeconds'],
    ['keepAlive', 1, 3_600, 'keepAliveSeconds'],
    ['minReprovision', 0, 86_400, 'minReprovisionSeconds'],
    ['telemetrySecondMs', 10, 1_000, 'telemetrySecondMs'],
  ] as const)('takes %s from %i to %i and nothing beyond', (key, min, max, field) => {
    expect(parseTestTimings(`${key}=${min}`)[field]).toBe(min);
    expect(parseTestTimings(`${key}=${max}`)[field]).toBe(max);
    expect(() => parseTestTimings(`${key}=${min - 1}`)).toThrow(`${key}=${min - 1}: expected whole seconds from ${min} to ${max}`);
    expect(() => parseTestTimings(`${key}=${max + 1}`)).toThrow(`${key}=${max + 1}: expected whole seconds from ${min} to ${max}`);
  });

  it('makes backoff=fast start at 200 ms and double up to 2 s', () => {
    expect(parseTestTimings('backoff=fast').backoff).toEqual({ initialMs: 200, maxMs: 2_000, multiplier: 2 });
  });

  it('takes spread in seconds, from 0 to an hour, and hands it on in milliseconds', () => {
    expect(parseTestTimings('spread=3').reconnectSpreadMs).toBe(3_000);
    expect(parseTestTimings('spread=3600').reconnectSpreadMs).toBe(3_600_000);
    expect(() => parseTestTimings('spread=3601')).toThrow('spread=3601: expected whole seconds from 0 to 3600');
  });

  it('refuses numbers that are not plain digits', () => {
    for (const value of ['0x10', '1e3', '+5', ' 5', '5 s', '1234567']) {
      expect(() => parseTestTimings(`keepAlive=${value}`), value).toThrow('IOT_AGENT_TEST_TIMINGS');
    }
  });

  it('renews a shortened token a quarter of its lifetime before expiry, at least a second before', () => {
    expect(parseTestTimings('tokenLifetime=2').tokenRenewalMarginSeconds).toBe(1);
    expect(parseTestTimings('tokenLifetime=7').tokenRenewalMarginSeconds).toBe(1);
    expect(parseTestTimings('tokenLifetime=9').tokenRenewalMarginSeconds).toBe(2);
    expect(parseTestTimings('tokenLifetime=6,renewalMargin=5')).toEqual({ tokenLifetimeSeconds: 6, tokenRenewalMarginSeconds: 5 });
    expect(parseTestTimings('renewalMargin=50')).toEqual({ tokenRenewalMarginSeconds: 50 });
  });

  it('says which keys it knows and that the knob is for tests', () => {
    let caught: unknown;
    try {
      parseTestTimings('colour=blue');
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({
      message: 'IOT_AGENT_TEST_TIMINGS "colour=blue": expected one of tokenLifetime=…, renewalMargin=…, keepAlive=…, spread=…, minReprovision=…, hubProbe=…, telemetrySecondMs=…, backoff=…',
      exitCode: ExitCode.usage,
      hint: 'a test knob; unset it for production',
    });
  });
});
