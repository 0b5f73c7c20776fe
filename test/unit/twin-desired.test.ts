import type { Twin } from 'azure-iot-device';
import { describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DesiredFeed } from '../../agent/twin/desired-feed.js';
import { DesiredSync, type ApplyOutcome } from '../../agent/twin/desired-sync.js';
import { ReportedProperties } from '../../agent/twin/reporter.js';
import { checkWritable } from '../../agent/twin/writable.js';

const log = new Logger({ write: () => undefined });

/** A stand-in twin that records reported patches; the first `failures` of them are refused as IoT Hub refuses a throttled one. */
function recordingTwin(failures = 0, answerMs = 1): { twin: Twin; patches: Record<string, unknown>[]; refused: Record<string, unknown>[] } {
  const patches: Record<string, unknown>[] = [];
  const refused: Record<string, unknown>[] = [];
  const update = (patch: Record<string, unknown>, done: (err?: Error) => void) => {
    if (refused.length < failures) {
      refused.push(structuredClone(patch));
      setTimeout(() => done(new Error('ThrottlingException: too many twin requests')), answerMs);
      return;
    }
    patches.push(structuredClone(patch));
    setTimeout(() => done(), answerMs);
  };
  return { twin: { properties: { reported: { update } } } as unknown as Twin, patches, refused };
}

function setup() {
  const applied: [string, unknown][] = [];
  let interval = 60;
  let finishHardening!: (r: { ac: number; ad: string }) => void;
  const reported = new ReportedProperties(log);
  const sync = new DesiredSync({
    telemetryIntervalSeconds: async (s: number): Promise<ApplyOutcome> => { interval = s; applied.push(['interval', s]); return { ac: 200, ad: 'applied' }; },
    logLevel: async (l: string): Promise<ApplyOutcome> => { applied.push(['log', l]); return { ac: 200, ad: 'applied' }; },
    hardeningProfile: async (p: string): Promise<ApplyOutcome> => {
      applied.push(['profile', p]);
      return { ac: 202, ad: `applying profile ${p}`, final: new Promise((r) => { finishHardening = r; }) };
    },
  }, (key) => (key === 'telemetryIntervalSeconds' ? interval : undefined), reported, log);
  return { applied, reported, sync, finish: (r: { ac: number; ad: string }) => finishHardening(r) };
}

describe('writable properties', () => {
  it.each([
    ['telemetryIntervalSeconds', 30, true],
    ['telemetryIntervalSeconds', 10, true],
    ['telemetryIntervalSeconds', 9, false],
    ['telemetryIntervalSeconds', 1, false],
    ['telemetryIntervalSeconds', 0, false],
    ['telemetryIntervalSeconds', 86_401, false],
    ['telemetryIntervalSeconds', '30', false],
    ['logLevel', 'warn', true],
    ['logLevel', 'WARN', false],
    ['hardeningProfile', 'strict', true],
    ['hardeningProfile', '/etc/passwd', false],
  ] as const)('checks %s = %j (valid: %s)', (key, value, ok) => {
    expect(checkWritable(key, value).ok).toBe(ok);
  });

  it('applies valid values and acknowledges them with value, 200, the version and a description', async () => {
    const { applied, reported, sync } = setup();
    await sync.handlePatch({ telemetryIntervalSeconds: 30, logLevel: 'debug', unrelated: { x: 1 }, $version: 4 });
    expect(applied).toEqual([['interval', 30], ['log', 'debug']]);
    expect(reported.current).toEqual({
      telemetryIntervalSeconds: { value: 30, ac: 200, av: 4, ad: 'applied' },
      logLevel: { value: 'debug', ac: 200, av: 4, ad: 'applied' },
    });
  });

  it('acknowledges an invalid value with 400 and the value in force, and never applies it', async () => {
    const { applied, reported, sync } = setup();
    await sync.handlePatch({ telemetryIntervalSeconds: 5, $version: 7 });
    expect(applied).toEqual([]);
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 60, ac: 400, av: 7, ad: 'rejected: expected whole seconds from 10 to 86400, got the number 5' });
  });

  it('does not apply a value again when the same document comes back after a reconnect', async () => {
    const { applied, sync } = setup();
    await sync.handleFull({ telemetryIntervalSeconds: 30, $version: 2 });
    await sync.handleFull({ telemetryIntervalSeconds: 30, $version: 2 });
    await sync.handlePatch({ telemetryIntervalSeconds: 31, $version: 3 });
    expect(applied).toEqual([['interval', 30], ['interval', 31]]);
  });

  it('acknowledges slow work 202 first, then with its final result', async () => {
    const { reported, sync, finish } = setup();
    await sync.handlePatch({ hardeningProfile: 'strict', $version: 9 });
    expect(reported.current.hardeningProfile).toEqual({ value: 'strict', ac: 202, av: 9, ad: 'applying profile strict' });
    finish({ ac: 200, ad: 'profile strict applied and confirmed' });
    await new Promise((r) => setTimeout(r, 0));
    expect(reported.current.hardeningProfile).toEqual({ value: 'strict', ac: 200, av: 9, ad: 'profile strict applied and confirmed' });
  });

  it('ignores documents that are not objects, and survives an applier that throws', async () => {
    const reported = new ReportedProperties(log);
    const sync = new DesiredSync({
      telemetryIntervalSeconds: async () => { throw new Error('boom'); },
      logLevel: async () => ({ ac: 200, ad: 'applied' }),
      hardeningProfile: async () => ({ ac: 200, ad: 'applied' }),
    }, () => 60, reported, log);
    await sync.handlePatch('nonsense');
    await sync.handleFull(null);
    await sync.handlePatch({ telemetryIntervalSeconds: 15, $version: 1 });
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 60, ac: 500, av: 1, ad: 'not applied: boom' });
  });

  it('acknowledges every writable property the whole document leaves unset with the value in force, 203 and version 0', async () => {
    const { applied, reported, sync } = setup();
    await sync.handleFull({ telemetryIntervalSeconds: 30, $version: 5 });
    expect(applied).toEqual([['interval', 30]]);
    expect(reported.current).toEqual({
      telemetryIntervalSeconds: { value: 30, ac: 200, av: 5, ad: 'applied' },
      logLevel: { value: null, ac: 203, av: 0, ad: 'no desired value: the device\'s own value is in force' },
      hardeningProfile: { value: null, ac: 203, av: 0, ad: 'no desired value: the device\'s own value is in force' },
    });
    await sync.handlePatch({ logLevel: 'warn', $version: 6 });
    expect(reported.current.logLevel).toEqual({ value: 'warn', ac: 200, av: 6, ad: 'applied' });
    expect(reported.current.hardeningProfile).toMatchObject({ ac: 203 }); // a patch leaves the others alone
  });
});

describe('the desired feed (IoT Hub\'s reconnection flow)', () => {
  it('keeps patches that arrive before the whole document, then passes on only those newer than it', () => {
    const feed = new DesiredFeed();
    const seen: [string, unknown][] = [];
    feed.push({ a: 1, $version: 4 });
    feed.push({ a: 2, $version: 6 });
    feed.start({ a: 1, $version: 5 }, { full: (d) => seen.push(['full', d.$version]), patch: (p) => seen.push(['patch', p.$version]) });
    feed.push({ a: 3, $version: 5 });
    feed.push({ a: 4, $version: 7 });
    expect(seen).toEqual([['full', 5], ['patch', 6], ['patch', 7]]);
  });
});

describe('reported properties', () => {
  it('sends the whole state on attach and coalesced patches after', async () => {
    const reported = new ReportedProperties(log);
    reported.update({ a: 1, nested: { x: 1 } });
    const { twin, patches } = recordingTwin();
    reported.attach(twin);
    await new Promise((r) => setTimeout(r, 20));
    expect(patches).toEqual([{ a: 1, nested: { x: 1 } }]);
    reported.update({ nested: { y: 2 } });
    reported.update({ b: 3 });
    await new Promise((r) => setTimeout(r, 300));
    expect(patches[1]).toEqual({ nested: { y: 2 }, b: 3 });
    expect(reported.current).toEqual({ a: 1, nested: { x: 1, y: 2 }, b: 3 });
    reported.detach();
  });

  it('converges on its own after the hub refused three patches: sent again with backoff, merged under what changed meanwhile', async () => {
    const reported = new ReportedProperties(log, { initialMs: 10, maxMs: 40, multiplier: 2 });
    const { twin, patches, refused } = recordingTwin(3);
    reported.attach(twin);
    reported.update({ a: 1 });
    await new Promise((r) => setTimeout(r, 5));
    reported.update({ b: 2 });
    await expect.poll(() => patches.length, { timeout: 5_000 }).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(refused).toHaveLength(3);
    expect(Object.assign({}, ...patches)).toEqual({ a: 1, b: 2 });
    expect(patches).toHaveLength(1); // one patch, with no further change needed to send it
    reported.detach();
  });

  it('fits what it sends to the hub\'s limits: a 10 KB hardening drift error goes out clipped to 4 KB', async () => {
    const reported = new ReportedProperties(log);
    const { twin, patches } = recordingTwin();
    reported.attach(twin);
    reported.update({ hardening: { drift: null, driftError: 'iptables: '.repeat(1_000) } });
    await expect.poll(() => patches.length).toBeGreaterThan(0);
    const sent = (Object.assign({}, ...patches) as { hardening: { driftError: string } }).hardening.driftError;
    expect(Buffer.byteLength(sent)).toBeLessThanOrEqual(4096);
    expect(sent.endsWith('...')).toBe(true);
    reported.detach();
  });

  it('sends one patch at a time, so a refused older one never lands after a newer one', async () => {
    const reported = new ReportedProperties(log, { initialMs: 10, maxMs: 40, multiplier: 2 });
    const { twin, patches } = recordingTwin(1, 300); // the refusal of v1 comes while v2 is waiting
    reported.attach(twin);
    reported.update({ v: 1 });
    await new Promise((r) => setTimeout(r, 210));
    reported.update({ v: 2 });
    await expect.poll(() => patches.at(-1)?.v, { timeout: 5_000 }).toBe(2);
    await new Promise((r) => setTimeout(r, 300));
    expect(patches.at(-1)?.v).toBe(2);
    reported.detach();
  });
});
