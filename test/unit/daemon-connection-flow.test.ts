import { describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { dpsFailure, inWords } from '../../agent/daemon/connection-flow.js';
import { policySettings } from '../../agent/daemon/daemon.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { DEFAULT_BACKOFF } from '../../agent/retry/backoff.js';
import { FAST_BACKOFF } from '../../agent/runtime-overrides.js';

const dpsError = (httpStatus: number | undefined, retryable: boolean, operatorMustAct: boolean, retryAfterMs?: number) =>
  new DpsError('x', { httpStatus, retryable, operatorMustAct, retryAfterMs });

describe('what the connection policy learns of a failed DPS attempt', () => {
  it('takes any error that is not DPS\'s as worth retrying', () => {
    expect(dpsFailure(new Error('TPM unavailable'))).toEqual({ retryable: true });
  });

  it('passes on whether to retry, and DPS\'s Retry-After', () => {
    expect(dpsFailure(dpsError(429, true, false, 7_000))).toEqual({ retryable: true, retryAfterMs: 7_000, refused: false, operatorMustAct: false });
    expect(dpsFailure(dpsError(200, false, true))).toEqual({ retryable: false, retryAfterMs: undefined, refused: false, operatorMustAct: true });
  });

  it.each([401, 403, 404])('counts HTTP %i as a refusal, which may be an enrollment on its way rather than a case for an operator yet', (status) => {
    expect(dpsFailure(dpsError(status, false, true))).toEqual({ retryable: false, retryAfterMs: undefined, refused: true, operatorMustAct: false });
  });

  it('does not count a 400 as a refusal', () => {
    expect(dpsFailure(dpsError(400, false, true))).toMatchObject({ refused: false, operatorMustAct: true });
  });
});

describe('a delay in words', () => {
  it.each([
    [0, '0 s'], [1, '1 s'], [1_000, '1 s'], [1_001, '2 s'], [89_999, '90 s'],
    [90_000, '2 min'], [149_999, '2 min'], [150_000, '3 min'], [90 * 60_000 - 1, '90 min'],
    [90 * 60_000, '1.5 h'], [6 * 3_600_000, '6.0 h'], [6 * 3_600_000 + 179_999, '6.0 h'], [6 * 3_600_000 + 200_000, '6.1 h'],
  ])('says %i ms as %s', (ms, words) => {
    expect(inWords(ms)).toBe(words);
  });
});

describe('the connection policy\'s settings', () => {
  const config = (): AgentConfig => ({
    ...structuredClone(DEFAULTS),
    provisioning: { ...DEFAULTS.provisioning, reprovision: 'never', minReprovisionSeconds: 600, hubUnreachableSeconds: 120, slowRetryHours: 12 },
  });

  it('come from the config, with the production backoff and spread', () => {
    expect(policySettings(config())).toEqual({
      reprovision: 'never', minReprovisionSeconds: 600, hubUnreachableSeconds: 120, operatorRetrySeconds: 12 * 3_600,
      backoff: DEFAULT_BACKOFF, reconnectSpreadMs: 15_000,
    });
  });

  it('take a test\'s shorter timings over the config\'s', () => {
    expect(policySettings(config(), { timings: { minReprovisionSeconds: 2, backoff: FAST_BACKOFF, reconnectSpreadMs: 0 } })).toMatchObject({
      minReprovisionSeconds: 2, backoff: FAST_BACKOFF, reconnectSpreadMs: 0, hubUnreachableSeconds: 120,
    });
    expect(policySettings(config(), { timings: { hubUnreachableSeconds: 2 } })).toMatchObject({ hubUnreachableSeconds: 2, minReprovisionSeconds: 600 });
  });
});
