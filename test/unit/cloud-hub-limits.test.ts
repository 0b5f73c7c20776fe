import { describe, expect, it } from 'vitest';
import { parseBehaviour } from '../cloud/hub/admin-api.js';
import { D2cThrottle, type Admission } from '../cloud/hub/d2c-throttle.js';
import { SimHubError } from '../cloud/errors.js';
import { parseIdentityUpdate } from '../cloud/hub/identity-update.js';
import { emptyTwin, patchReported, patchTags, twinDocumentSize, TwinPatchError, TWIN_LIMITS } from '../cloud/hub/twin.js';

function nested(levels: number): Record<string, unknown> {
  let doc: Record<string, unknown> = { property: 'value' };
  for (let i = levels; i >= 1; i--) doc = { [`level${i}`]: doc };
  return doc;
}

describe('twin limits as Microsoft Learn states and counts them', () => {
  it('accepts the article\'s own ten-level example and refuses an eleventh level', () => {
    expect(() => patchTags(emptyTwin(), nested(10) as never)).not.toThrow();
    expect(() => patchReported(emptyTwin(), nested(10) as never)).not.toThrow();
    expect(() => patchReported(emptyTwin(), nested(11) as never)).toThrow(/nests deeper than 10 levels/);
  });

  it('refuses strings over 4 KB and integers outside -4503599627370496..4503599627370495, in objects and arrays', () => {
    expect(() => patchReported(emptyTwin(), { s: 'x'.repeat(4096) })).not.toThrow();
    expect(() => patchReported(emptyTwin(), { s: 'é'.repeat(2049) })).toThrow(/string over 4096 bytes/);
    expect(() => patchReported(emptyTwin(), { n: TWIN_LIMITS.maxInteger, m: TWIN_LIMITS.minInteger, f: 1.5 })).not.toThrow();
    expect(() => patchReported(emptyTwin(), { n: TWIN_LIMITS.maxInteger + 1 })).toThrow(TwinPatchError);
    expect(() => patchReported(emptyTwin(), { list: [1, 'y'.repeat(5000)] })).toThrow(/list\[1\]/);
  });

  it('limits tags to 8 KB and each property side to 32 KB, counted key by key, numbers as 8 bytes', () => {
    expect(twinDocumentSize({ ab: 'cde', n: 1, t: true, o: { k: null } })).toBe(2 + 3 + 1 + 8 + 1 + 4 + 1 + 1);
    expect(twinDocumentSize({ 'x\u0001': 'a\u0002b' })).toBe(3);
    const threeKb = (i: number) => ({ [`k${i}`]: 'v'.repeat(3000) });
    expect(() => patchTags(emptyTwin(), { ...threeKb(1), ...threeKb(2) })).not.toThrow();
    expect(() => patchTags(emptyTwin(), { ...threeKb(1), ...threeKb(2), ...threeKb(3) })).toThrow(/tags would exceed 8192 bytes/);
    let twin = emptyTwin();
    for (let i = 0; i < 10; i++) twin = patchReported(twin, threeKb(i));
    expect(() => patchReported(twin, threeKb(11))).toThrow(/reported properties would exceed 32768 bytes/);
  });
});

describe('the D2C throttle', () => {
  function clocked() {
    let now = 0;
    const throttle = new D2cThrottle(() => now);
    return { throttle, advance: (ms: number) => { now += ms; } };
  }

  it('admits a second\'s burst at once, queues up to the backlog, and throttles beyond it', () => {
    const { throttle } = clocked();
    throttle.configure({ perSecond: 2, backlog: 1 });
    const verdicts: Admission[] = [];
    const owner = {};
    for (let i = 0; i < 4; i++) throttle.admit(owner, 10, (v) => verdicts.push(v));
    expect(verdicts).toEqual(['accepted', 'accepted', 'throttled']);
    expect(throttle.queued).toBe(1);
    throttle.close();
  });

  it('drops what a closed connection had waiting, so it is never acknowledged', () => {
    const { throttle } = clocked();
    throttle.configure({ perSecond: 1, backlog: 5 });
    const a = {};
    const verdicts: Admission[] = [];
    throttle.admit(a, 10, (v) => verdicts.push(v));
    throttle.admit(a, 10, (v) => verdicts.push(v));
    throttle.forget(a);
    expect(throttle.queued).toBe(0);
    expect(verdicts).toEqual(['accepted']);
    throttle.close();
  });

  it('counts the daily quota in 4 KB chunks, refuses past it, and starts again on a new UTC day', () => {
    const { throttle, advance } = clocked();
    throttle.configure({ dailyQuota: 3 });
    const verdicts: Admission[] = [];
    throttle.admit({}, 5000, (v) => verdicts.push(v)); // two chunks
    throttle.admit({}, 1, (v) => verdicts.push(v));
    throttle.admit({}, 1, (v) => verdicts.push(v));
    expect(verdicts).toEqual(['accepted', 'accepted', 'quota']);
    expect(throttle.quotaExhausted()).toBe(true);
    advance(86_400_000);
    expect(throttle.quotaExhausted()).toBe(false);
  });
});

describe('service and admin bodies', () => {
  it('takes the status, its reason and non-empty keys from a device identity PUT', () => {
    expect(parseIdentityUpdate({ deviceId: 'd1', status: 'disabled', statusReason: 'stolen', authentication: { symmetricKey: { primaryKey: '', secondaryKey: '' } } }, 'd1'))
      .toEqual({ status: 'disabled', statusReason: 'stolen' });
    for (const body of [[], { deviceId: 'd2' }, { deviceId: 'd1', status: 'off' }, { deviceId: 'd1', statusReason: 'x'.repeat(129) },
      { deviceId: 'd1', authentication: { symmetricKey: { primaryKey: 'not base64!' } } }]) {
      expect(() => parseIdentityUpdate(body, 'd1'), JSON.stringify(body)).toThrow(SimHubError);
    }
  });

  it('takes hub behaviour knobs as positive whole numbers and a boolean, and refuses the rest', () => {
    expect(parseBehaviour({ perSecond: 100, backlog: 20, dailyQuota: 8000, registrationReenables: true }))
      .toEqual({ perSecond: 100, backlog: 20, dailyQuota: 8000, registrationReenables: true });
    for (const body of [null, { perSecond: 0 }, { backlog: 1.5 }, { registrationReenables: 'yes' }, { colour: 1 }, { c2dDefaultTtlSeconds: 200_000 }]) {
      expect(() => parseBehaviour(body), JSON.stringify(body)).toThrow(SimHubError);
    }
  });
});
