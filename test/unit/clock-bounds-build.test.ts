import { afterEach, describe, expect, it, vi } from 'vitest';

/**
 * CLOCK_NOT_BEFORE is fixed when the module loads, from the IOT_AGENT_BUILT_AT constant the
 * packaged bundle defines (packaging/bundle.mjs). Each test loads the module afresh, so a
 * module that cannot load fails the test rather than the whole file.
 */
async function freshFloor(): Promise<string> {
  vi.resetModules();
  const { CLOCK_NOT_BEFORE } = await import('../../agent/time/clock-bounds.js');
  return CLOCK_NOT_BEFORE.toISOString();
}

afterEach(() => {
  delete (globalThis as { IOT_AGENT_BUILT_AT?: string }).IOT_AGENT_BUILT_AT;
});

describe('the floor of a plausible clock, as the module loads', () => {
  it('loads without the bundle\'s build time, at the release floor', async () => {
    expect(await freshFloor()).toBe('2026-01-01T00:00:00.000Z');
  });

  it('takes the bundle\'s build time when it is later than the release floor', async () => {
    (globalThis as { IOT_AGENT_BUILT_AT?: string }).IOT_AGENT_BUILT_AT = '2027-03-01T08:00:00.000Z';
    expect(await freshFloor()).toBe('2027-03-01T08:00:00.000Z');
  });
});
