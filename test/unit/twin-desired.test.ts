import type { Twin } from 'azure-iot-device';
import { describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DesiredSync, type ApplyOutcome } from '../../agent/twin/desired-sync.js';
import { ReportedProperties } from '../../agent/twin/reporter.js';
import { checkWritable } from '../../agent/twin/writable.js';

const log = new Logger({ write: () => undefined });

/** A stand-in twin that records reported patches. */
function recordingTwin(): { twin: Twin; patches: Record<string, unknown>[] } {
  const patches: Record<string, unknown>[] = [];
  const twin = { properties: { reported: { update: (patch: Record<string, unknown>, done: (err?: Error) => void) => { patches.push(structuredClone(patch)); done(); } } } };
  return { twin: twin as unknown as Twin, patches };
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
    await sync.handle({ telemetryIntervalSeconds: 30, logLevel: 'debug', unrelated: { x: 1 }, $version: 4 });
    expect(applied).toEqual([['interval', 30], ['log', 'debug']]);
    expect(reported.current).toEqual({
      telemetryIntervalSeconds: { value: 30, ac: 200, av: 4, ad: 'applied' },
      logLevel: { value: 'debug', ac: 200, av: 4, ad: 'applied' },
    });
  });

  it('acknowledges an invalid value with 400 and the value in force, and never applies it', async () => {
    const { applied, reported, sync } = setup();
    await sync.handle({ telemetryIntervalSeconds: -5, $version: 7 });
    expect(applied).toEqual([]);
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 60, ac: 400, av: 7, ad: 'rejected: expected whole seconds from 1 to 86400, got -5' });
  });

  it('does not apply a value again when the same document comes back after a reconnect', async () => {
    const { applied, sync } = setup();
    await sync.handle({ telemetryIntervalSeconds: 30, $version: 2 });
    await sync.handle({ telemetryIntervalSeconds: 30, $version: 2 });
    await sync.handle({ telemetryIntervalSeconds: 31, $version: 3 });
    expect(applied).toEqual([['interval', 30], ['interval', 31]]);
  });

  it('acknowledges slow work 202 first, then with its final result', async () => {
    const { reported, sync, finish } = setup();
    await sync.handle({ hardeningProfile: 'strict', $version: 9 });
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
    await sync.handle('nonsense');
    await sync.handle(null);
    await sync.handle({ telemetryIntervalSeconds: 5, $version: 1 });
    expect(reported.current.telemetryIntervalSeconds).toEqual({ value: 60, ac: 500, av: 1, ad: 'not applied: boom' });
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
});
