import { describe, expect, it } from 'vitest';
import { classifyDpsFailure, DpsError } from '../../agent/provisioning/dps-error.js';
import { RateLimit } from '../../agent/telemetry/rate-limit.js';
import { clipUtf8, fitTwinLimits, MAX_STRING_BYTES } from '../../agent/twin/limits.js';
import { patchReported, emptyTwin } from '../cloud/hub/twin.js';

describe('reported patches fitted to IoT Hub\'s twin limits', () => {
  it('clips long strings (a hardening drift error, a command message) to 4 KB of UTF-8, never inside a character', () => {
    const fitted = fitTwinLimits({ hardening: { driftError: 'é'.repeat(10_000) }, lastCommands: { ping: { message: '😀'.repeat(3000) } } }) as {
      hardening: { driftError: string }; lastCommands: { ping: { message: string } };
    };
    expect(Buffer.byteLength(fitted.hardening.driftError)).toBeLessThanOrEqual(MAX_STRING_BYTES);
    expect(fitted.hardening.driftError.endsWith('é...')).toBe(true);
    expect(Buffer.byteLength(fitted.lastCommands.ping.message)).toBeLessThanOrEqual(MAX_STRING_BYTES);
    expect(/[\uD800-\uDBFF]\.\.\.$/.test(fitted.lastCommands.ping.message)).toBe(false);
    expect(clipUtf8('short', 10)).toBe('short');
  });

  it('turns integers the hub refuses into strings and cuts objects deeper than 10 levels; the local hub then takes the patch', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 14; i++) deep = { level: deep };
    const patch = { big: 2 ** 60, small: -(2 ** 60), fine: 2 ** 40, deep, text: 'x'.repeat(9000) };
    const fitted = fitTwinLimits(patch);
    expect(fitted).toMatchObject({ big: String(2 ** 60), small: String(-(2 ** 60)), fine: 2 ** 40 });
    expect(() => patchReported(emptyTwin(), patch as never)).toThrow();
    expect(() => patchReported(emptyTwin(), fitted as never)).not.toThrow();
  });
});

describe('the device\'s D2C rate cap', () => {
  it('lets a second\'s worth through at once and the rest at the rate, in order', async () => {
    const limit = new RateLimit(20);
    const t0 = Date.now();
    const order: number[] = [];
    await Promise.all(Array.from({ length: 30 }, (_, i) => limit.take().then(() => order.push(i))));
    const elapsed = Date.now() - t0;
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(elapsed).toBeGreaterThanOrEqual(450); // 10 over the burst at 20/s
    expect(elapsed).toBeLessThan(3_000);
  });

  it('lets everything waiting go when released', async () => {
    const limit = new RateLimit(1);
    await limit.take();
    const waiting = limit.take();
    limit.release();
    await expect(waiting).resolves.toBeUndefined();
  });
});

describe('DPS failures named in DPS\'s own words', () => {
  const target = { globalEndpoint: 'dps.example', idScope: '0ne1', registrationId: 'r1' };
  const ended = (status: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(`status is ${status}`), { result: { operationId: 'op', status, registrationState: { status, ...extra } } });

  it('names a disabled enrollment as DPS ended it, and as something only an operator mends', () => {
    const err = classifyDpsFailure(ended('disabled'), { statusCode: 200, retryAfter: undefined, error: undefined }, target, false);
    expect(err).toBeInstanceOf(DpsError);
    expect(err.message).toBe('DPS dps.example (ID scope 0ne1, registration r1) ended the registration with status "disabled": the enrollment is disabled');
    expect(err).toMatchObject({ status: 'disabled', operatorMustAct: true, retryable: false, httpStatus: 200 });
    expect(err.hint).toMatch(/an operator must enable the enrollment.*slowRetryHours.*iot-agent provision/);
    expect(err.message).not.toMatch(/could not be reached/);
  });

  it('names a failed registration with DPS\'s errorCode and errorMessage, retried on the ordinary backoff', () => {
    const err = classifyDpsFailure(ended('failed', { errorCode: 400209, errorMessage: 'hub unreachable' }), undefined, target, false);
    expect(err.message).toContain('ended the registration with status "failed" (400209: hub unreachable)');
    expect(err).toMatchObject({ status: 'failed', errorCode: 400209, errorMessage: 'hub unreachable', operatorMustAct: false, retryable: true });
  });

  it('keeps its details as plain data that survives JSON between processes', () => {
    const err = classifyDpsFailure(ended('failed', { errorCode: 1, errorMessage: 'm' }), { statusCode: 200, retryAfter: '3', error: undefined }, target, false);
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({ retryable: true, retryAfterMs: 3000, httpStatus: 200, status: 'failed', errorCode: 1, errorMessage: 'm', operatorMustAct: false });
  });

  it.each([[401, true], [403, true], [404, true], [400, true], [429, false], [503, false]])('HTTP %i: operator must act %s', (status, operator) => {
    expect(classifyDpsFailure(new Error('x'), { statusCode: status, retryAfter: undefined, error: undefined }, target, false).operatorMustAct).toBe(operator);
  });

  it('calls an answer that never came a network problem, with the network hint', () => {
    const err = classifyDpsFailure(new Error('x'), { statusCode: undefined, retryAfter: undefined, error: new Error('ECONNREFUSED') }, target, false);
    expect(err).toMatchObject({ retryable: true, operatorMustAct: false });
    expect(err.message).toMatch(/could not be reached/);
  });
});
