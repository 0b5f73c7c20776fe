import { describe, expect, it } from 'vitest';
import { FAST_BACKOFF, parseTestTimings, runtimeOverrides } from '../../agent/runtime-overrides.js';

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
