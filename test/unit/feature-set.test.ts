import { describe, expect, it } from 'vitest';
import { FeatureSet, type Connection, type Feature } from '../../agent/daemon/feature.js';
import { Logger } from '../../agent/log/logger.js';

function recording(name: string, events: string[], fail?: 'attach' | 'start' | 'detach'): Feature {
  const step = (what: string) => {
    events.push(`${name}.${what}`);
    if (fail === what) throw new Error(`${name} ${what} broke`);
  };
  return { name, start: () => step('start'), stop: () => { step('stop'); return Promise.resolve(); }, attach: () => step('attach'), detach: () => step('detach') };
}

describe('the daemon\'s features', () => {
  const connection = {} as Connection;

  it('runs every feature\'s lifecycle in order, and stop detaches first', async () => {
    const events: string[] = [];
    const set = new FeatureSet([recording('a', events), recording('b', events)], new Logger({ write: () => undefined }));
    set.start();
    await set.attach(connection);
    set.detach();
    await set.stop();
    expect(events).toEqual(['a.start', 'b.start', 'a.attach', 'b.attach', 'a.detach', 'b.detach', 'a.detach', 'b.detach', 'a.stop', 'b.stop']);
  });

  it('logs a feature that fails and still runs the others', async () => {
    const events: string[] = [];
    const lines: string[] = [];
    const set = new FeatureSet([recording('a', events, 'attach'), recording('b', events, 'start'), recording('c', events, 'detach')],
      new Logger({ journal: false, write: (l) => lines.push(l) }));
    set.start();
    await set.attach(connection);
    set.detach();
    expect(events).toEqual(['a.start', 'b.start', 'c.start', 'a.attach', 'b.attach', 'c.attach', 'a.detach', 'b.detach', 'c.detach']);
    expect(lines.some((l) => l.includes('event=features.attach_failed') && l.includes('feature=a') && l.includes('a attach broke'))).toBe(true);
    expect(lines.some((l) => l.includes('event=features.start_failed') && l.includes('feature=b'))).toBe(true);
    expect(lines.some((l) => l.includes('event=features.detach_failed') && l.includes('feature=c'))).toBe(true);
  });
});

describe('the daemon\'s features: stopping', () => {
  it('stops every feature, logging one that fails to stop, after detaching them all', async () => {
    const events: string[] = [];
    const lines: string[] = [];
    const failing: Feature = { name: 'telemetry', attach: () => undefined, stop: () => { events.push('telemetry.stop'); return Promise.reject(new Error('queue busy')); } };
    const set = new FeatureSet([failing, recording('b', events), { name: 'bare', attach: () => undefined }], new Logger({ journal: false, write: (l) => lines.push(l) }));
    set.start();
    set.detach();
    await set.stop();
    expect(events).toEqual(['b.start', 'b.detach', 'b.detach', 'telemetry.stop', 'b.stop']);
    expect(lines.filter((l) => l.includes('event=features.stop_failed') && l.includes('feature=telemetry') && l.includes('queue busy'))).toHaveLength(1);
    expect(lines.every((l) => l.includes(' level=error '))).toBe(true);
  });

  it('waits for each feature to attach before the next', async () => {
    const events: string[] = [];
    const slow: Feature = { name: 'slow', attach: async () => { await new Promise((r) => setTimeout(r, 30)); events.push('slow.attached'); } };
    const set = new FeatureSet([slow, recording('b', events)], new Logger({ write: () => undefined }));
    await set.attach({} as Connection);
    expect(events).toEqual(['slow.attached', 'b.attach']);
  });
});
