import type { Twin } from 'azure-iot-device';
import { beforeAll, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DesiredFeed } from '../../agent/twin/desired-feed.js';
import { DesiredSync, type ApplyOutcome } from '../../agent/twin/desired-sync.js';
import { REPORT_RETRY, ReportedProperties } from '../../agent/twin/reporter.js';
import { checkWritable } from '../../agent/twin/writable.js';

let log: Logger;
beforeAll(() => { log = new Logger({ write: () => undefined }); });

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
    telemetryIntervalSeconds: (s: number): Promise<ApplyOutcome> => { interval = s; applied.push(['interval', s]); return Promise.resolve({ ac: 200, ad: 'applied' }); },
    logLevel: (l: string): Promise<ApplyOutcome> => { applied.push(['log', l]); return Promise.resolve({ ac: 200, ad: 'applied' }); },
    hardeningProfile: (p: string): Promise<ApplyOutcome> => {
      applied.push(['profile', p]);
      return Promise.resolve({ ac: 202, ad: `applying profile ${p}`, final: new Promise((r) => { finishHardening = r; }) });
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
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 60, ac: 400, av: 7, ad: 'rejected: expected whole seconds from 10 to 86400, got 5' });
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
      telemetryIntervalSeconds: () => Promise.reject(new Error('boom')),
      logLevel: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      hardeningProfile: () => Promise.resolve({ ac: 200, ad: 'applied' }),
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

describe('desired properties applied one at a time', () => {
  it('applies a value again once the desired document dropped it and sets it anew, acknowledging the drop with the value in force', async () => {
    const { applied, reported, sync } = setup();
    await sync.handleFull({ telemetryIntervalSeconds: 30, $version: 2 });
    await sync.handlePatch({ telemetryIntervalSeconds: null, $version: 3 });
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 30, ac: 203, av: 0, ad: 'no desired value: the device\'s own value is in force' });
    await sync.handlePatch({ telemetryIntervalSeconds: 30, $version: 4 });
    expect(applied).toEqual([['interval', 30], ['interval', 30]]);
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 30, ac: 200, av: 4, ad: 'applied' });
  });

  it('leaves a property a patch does not name alone, and does not forget it was handled', async () => {
    const { applied, reported, sync } = setup();
    await sync.handlePatch({ logLevel: 'warn', $version: 1 });
    await sync.handlePatch({ telemetryIntervalSeconds: 20, $version: 2 });
    expect(reported.current.logLevel).toEqual({ value: 'warn', ac: 200, av: 1, ad: 'applied' });
    await sync.handleFull({ logLevel: 'warn', telemetryIntervalSeconds: 20, $version: 2 });
    expect(applied).toEqual([['log', 'warn'], ['interval', 20]]);
  });

  it('acknowledges a value the device could not take with the value in force, and a later final failure too', async () => {
    const reported = new ReportedProperties(log);
    let finish!: (r: { ac: number; ad: string }) => void;
    const sync = new DesiredSync({
      telemetryIntervalSeconds: () => Promise.resolve({ ac: 409, ad: 'busy' }),
      logLevel: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      hardeningProfile: () => Promise.resolve({ ac: 202, ad: 'applying', final: new Promise((r) => { finish = r; }) }),
    }, (key) => ({ telemetryIntervalSeconds: 60, logLevel: 'info', hardeningProfile: 'baseline' })[key], reported, log);
    await sync.handlePatch({ telemetryIntervalSeconds: 30, hardeningProfile: 'strict', $version: 5 });
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 60, ac: 409, av: 5, ad: 'busy' });
    expect(reported.current.hardeningProfile).toEqual({ value: 'strict', ac: 202, av: 5, ad: 'applying' });
    finish({ ac: 500, ad: 'rolled back: hub unreachable' });
    await new Promise((r) => setTimeout(r, 0));
    expect(reported.current.hardeningProfile).toEqual({ value: 'baseline', ac: 500, av: 5, ad: 'rolled back: hub unreachable' });
  });

  it('drops the final result of slow work a newer desired value has taken over from', async () => {
    const reported = new ReportedProperties(log);
    const finishes: ((r: { ac: number; ad: string }) => void)[] = [];
    const sync = new DesiredSync({
      telemetryIntervalSeconds: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      logLevel: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      hardeningProfile: (p: string) => Promise.resolve({ ac: 202, ad: `applying profile ${p}`, final: new Promise((r) => { finishes.push(r); }) }),
    }, () => undefined, reported, log);
    await sync.handlePatch({ hardeningProfile: 'strict', $version: 1 });
    await sync.handlePatch({ hardeningProfile: 'baseline', $version: 2 });
    finishes[0]!({ ac: 200, ad: 'profile strict applied' });
    await new Promise((r) => setTimeout(r, 0));
    expect(reported.current.hardeningProfile).toEqual({ value: 'baseline', ac: 202, av: 2, ad: 'applying profile baseline' });
  });

  it('reports null as the value in force when the device has none', async () => {
    const { reported, sync } = setup();
    await sync.handlePatch({ logLevel: 'loud', $version: 3 });
    expect(reported.current.logLevel).toEqual({ value: null, ac: 400, av: 3, ad: 'rejected: expected one of debug, info, warn, error, got "loud"' });
  });

  it('applies patches one at a time, in the order they came', async () => {
    const reported = new ReportedProperties(log);
    const events: string[] = [];
    let release!: () => void;
    const sync = new DesiredSync({
      telemetryIntervalSeconds: async (s: number) => { events.push(`interval ${s} start`); await new Promise<void>((r) => { release = r; }); events.push(`interval ${s} end`); return { ac: 200, ad: 'applied' }; },
      logLevel: (l: string) => { events.push(`log ${l}`); return Promise.resolve({ ac: 200, ad: 'applied' }); },
      hardeningProfile: () => Promise.resolve({ ac: 200, ad: 'applied' }),
    }, () => undefined, reported, log);
    const first = sync.handlePatch({ telemetryIntervalSeconds: 30, $version: 1 });
    const second = sync.handlePatch({ logLevel: 'debug', $version: 2 });
    await new Promise((r) => setTimeout(r, 10));
    expect(events).toEqual(['interval 30 start']);
    release();
    await Promise.all([first, second]);
    expect(events).toEqual(['interval 30 start', 'interval 30 end', 'log debug']);
  });

  it('logs what it refused and what it applied, with the version', async () => {
    const lines: string[] = [];
    const reported = new ReportedProperties(log);
    const sync = new DesiredSync({
      telemetryIntervalSeconds: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      logLevel: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      hardeningProfile: () => Promise.resolve({ ac: 200, ad: 'applied' }),
    }, () => 60, reported, new Logger({ journal: false, write: (l) => lines.push(l.replace(/^time=\S+ /, '').trimEnd()) }));
    await sync.handlePatch({ telemetryIntervalSeconds: 5, logLevel: 'warn', $version: 8 });
    expect(lines).toEqual([
      'level=warn event=twin.desired_invalid key=telemetryIntervalSeconds version=8 reason="expected whole seconds from 10 to 86400, got 5"',
      'level=info event=twin.desired_applied key=logLevel version=8 ac=200',
    ]);
  });

  it('logs a document it could not handle and goes on with the next', async () => {
    const lines: string[] = [];
    const reported = new ReportedProperties(log);
    let broken = true;
    const sync = new DesiredSync({
      telemetryIntervalSeconds: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      logLevel: () => Promise.resolve({ ac: 200, ad: 'applied' }),
      hardeningProfile: () => Promise.resolve({ ac: 200, ad: 'applied' }),
    }, () => { if (broken) throw new Error('state unreadable'); return 60; }, reported, new Logger({ journal: false, write: (l) => lines.push(l) }));
    await expect(sync.handleFull({ $version: 1 })).resolves.toBeUndefined();
    expect(lines).toEqual([expect.stringMatching(/level=error event=twin.desired_failed err="state unreadable"/)]);
    broken = false;
    await sync.handlePatch({ logLevel: 'error', $version: 2 });
    expect(reported.current.logLevel).toMatchObject({ value: 'error', ac: 200 });
  });
});

describe('the desired feed before and after the whole document', () => {
  const recorder = () => {
    const seen: unknown[] = [];
    return { seen, handlers: { full: (d: Record<string, unknown>) => seen.push(['full', d.$version]), patch: (p: Record<string, unknown>) => seen.push(['patch', p.$version ?? p.n]) } };
  };

  it('keeps the last 100 patches that came before the document, dropping the oldest', () => {
    const feed = new DesiredFeed();
    for (let v = 1; v <= 101; v++) feed.push({ $version: v });
    const { seen, handlers } = recorder();
    feed.start({}, handlers);
    expect(seen).toHaveLength(101);
    expect(seen[0]).toEqual(['full', undefined]);
    expect(seen[1]).toEqual(['patch', 2]);
    expect(seen.at(-1)).toEqual(['patch', 101]);
  });

  it('passes on patches without a version whatever the document\'s, and buffers nothing once started', () => {
    const feed = new DesiredFeed();
    const { seen, handlers } = recorder();
    feed.start({ $version: 9 }, handlers);
    feed.push({ n: 'unversioned' });
    feed.push({ $version: 9 });
    feed.push({ $version: 10 });
    expect(seen).toEqual([['full', 9], ['patch', 'unversioned'], ['patch', 10]]);
  });

  it('takes a document without a version as version 0: every patch is newer', () => {
    const feed = new DesiredFeed();
    feed.push({ $version: 1 });
    const { seen, handlers } = recorder();
    feed.start({ logLevel: 'info' }, handlers);
    expect(seen).toEqual([['full', undefined], ['patch', 1]]);
  });
});

describe('reported properties sent to the hub', () => {
  it('retries a refused patch after at least 250 ms, after 1 s, 2 s, 4 s ... up to a minute', async () => {
    expect(REPORT_RETRY).toEqual({ initialMs: 1_000, maxMs: 60_000, multiplier: 2 });
    const sent: number[] = [];
    let refuse = true;
    const twin = { properties: { reported: { update: (_p: unknown, done: (err?: Error) => void) => {
      sent.push(performance.now());
      const err = refuse ? new Error('429') : undefined;
      refuse = false;
      done(err);
    } } } } as unknown as Twin;
    const reported = new ReportedProperties(log);
    reported.update({ a: 1 });
    reported.attach(twin);
    await expect.poll(() => sent.length, { timeout: 3_000 }).toBe(2);
    expect(sent[1]! - sent[0]!).toBeGreaterThanOrEqual(240);
    reported.detach();
  });

  it('waits at least 250 ms before a retry even when the backoff draws less', async () => {
    const { twin, patches, refused } = recordingTwin(1, 0);
    const reported = new ReportedProperties(log, { initialMs: 1, maxMs: 1, multiplier: 1 });
    reported.attach(twin);
    reported.update({ a: 1 });
    await expect.poll(() => refused.length).toBe(1);
    const refusedAt = performance.now();
    await expect.poll(() => patches.length, { timeout: 2_000 }).toBe(1);
    expect(performance.now() - refusedAt).toBeGreaterThanOrEqual(200);
    reported.detach();
  });

  it('logs a refused patch with its keys and when it goes again', async () => {
    const lines: string[] = [];
    const { twin, patches } = recordingTwin(1, 0);
    const reported = new ReportedProperties(new Logger({ journal: false, write: (l) => lines.push(l) }), { initialMs: 1, maxMs: 1, multiplier: 1 });
    reported.attach(twin);
    reported.update({ a: 1, b: { c: 2 } });
    await expect.poll(() => patches.length, { timeout: 2_000 }).toBe(1);
    expect(lines).toEqual([expect.stringMatching(/level=warn event=twin.report_failed err="ThrottlingException: too many twin requests" keys=a,b retryInMs=250\n$/)]);
    reported.detach();
  });

  it('sends nothing while detached, keeps what changed, and sends the whole state on the next attach', async () => {
    const reported = new ReportedProperties(log);
    const first = recordingTwin();
    reported.attach(first.twin);
    reported.update({ a: 1 });
    await expect.poll(() => first.patches.length).toBe(1);
    reported.detach();
    reported.update({ b: 2 });
    await new Promise((r) => setTimeout(r, 300));
    expect(first.patches).toEqual([{ a: 1 }]);
    const second = recordingTwin();
    reported.attach(second.twin);
    await expect.poll(() => second.patches.length).toBe(1);
    expect(second.patches).toEqual([{ a: 1, b: 2 }]);
    reported.detach();
  });

  it('sends nothing on attach when there is nothing to report', async () => {
    const reported = new ReportedProperties(log);
    const { twin, patches } = recordingTwin();
    reported.attach(twin);
    await new Promise((r) => setTimeout(r, 250));
    expect(patches).toEqual([]);
    reported.detach();
  });

  it('gathers changes for 200 ms into one patch', async () => {
    const reported = new ReportedProperties(log);
    const { twin, patches } = recordingTwin();
    reported.update({ a: 0 });
    reported.attach(twin);
    await expect.poll(() => patches.length).toBe(1);
    reported.update({ a: 1 });
    await new Promise((r) => setTimeout(r, 100));
    expect(patches).toHaveLength(1);
    reported.update({ b: 2 });
    await expect.poll(() => patches.length).toBe(2);
    expect(patches[1]).toEqual({ a: 1, b: 2 });
    reported.detach();
  });

  it('ignores the answer to a patch sent on a connection that has since been replaced', async () => {
    const reported = new ReportedProperties(log, { initialMs: 1, maxMs: 1, multiplier: 1 });
    const old = recordingTwin(5, 100);
    reported.update({ a: 1 });
    reported.attach(old.twin);
    await expect.poll(() => old.refused.length).toBe(1);
    const fresh = recordingTwin();
    reported.attach(fresh.twin);
    await expect.poll(() => fresh.patches.length).toBe(1);
    await new Promise((r) => setTimeout(r, 500));
    expect(old.refused).toHaveLength(1);
    expect(fresh.patches).toEqual([{ a: 1 }]);
    reported.detach();
  });

  it('merges as the twin does: objects key by key, lists and values replaced, and keeps no reference to what it was given', () => {
    const reported = new ReportedProperties(log);
    const given = { list: [1, 2], nested: { x: 1, deep: { y: 1 } }, scalar: 1 };
    reported.update(given);
    given.nested.deep.y = 99;
    reported.update({ list: [3], nested: { deep: { z: 2 } }, scalar: { now: 'an object' } });
    reported.update({ nested: { x: null } });
    expect(reported.current).toEqual({ list: [3], nested: { x: null, deep: { y: 1, z: 2 } }, scalar: { now: 'an object' } });
  });

  it('deletes an object when a later patch sets it to null', () => {
    const reported = new ReportedProperties(log);
    reported.update({ drift: { rule: 'ssh', count: 2 }, kept: 1 });
    reported.update({ drift: null });
    expect(reported.current).toEqual({ drift: null, kept: 1 });
  });

  it('sends nothing more while a patch is unanswered, and what changed meanwhile once it is', async () => {
    const reported = new ReportedProperties(log);
    const sent: Record<string, unknown>[] = [];
    let answer: (() => void) | undefined;
    const twin = { properties: { reported: { update: (patch: Record<string, unknown>, done: () => void) => { sent.push(structuredClone(patch)); answer = done; } } } } as unknown as Twin;
    reported.update({ a: 1 });
    reported.attach(twin);
    await expect.poll(() => sent.length).toBe(1);
    reported.update({ b: 2 });
    await new Promise((r) => setTimeout(r, 500));
    expect(sent).toEqual([{ a: 1 }]);
    answer!();
    await expect.poll(() => sent.length).toBe(2);
    expect(sent[1]).toEqual({ b: 2 });
    reported.detach();
  });
});

describe('desired documents that are not objects', () => {
  it.each([['null', null], ['a string', 'telemetryIntervalSeconds'], ['a list', [{ telemetryIntervalSeconds: 30 }]], ['a number', 5]])(
    'ignores %s: nothing applied, reported or logged as a failure', async (_what, doc) => {
      const applied: unknown[] = [];
      const lines: string[] = [];
      const reported = new ReportedProperties(log);
      const apply = (value: unknown): Promise<ApplyOutcome> => { applied.push(value); return Promise.resolve({ ac: 200, ad: 'applied' }); };
      const sync = new DesiredSync({ telemetryIntervalSeconds: apply, logLevel: apply, hardeningProfile: apply }, () => undefined, reported,
        new Logger({ journal: false, write: (l) => lines.push(l) }));
      await sync.handleFull(doc);
      await sync.handlePatch(doc);
      expect(applied).toEqual([]);
      expect(reported.current).toEqual({});
      expect(lines).toEqual([]);
    });
});
