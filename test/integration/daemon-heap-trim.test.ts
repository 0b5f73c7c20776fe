import { afterAll, describe, expect, it } from 'vitest';
import { TEST_TIMINGS } from '../support/agent-process.js';
import { DeviceCloud } from '../support/device-cloud.js';

/**
 * The daemon's heap trim (agent/daemon/heap-trim.ts) as the unit runs it: node started with
 * --expose-gc (the unit's NODE_OPTIONS), a full collection once a MiB of garbage stands.
 */
describe('the daemon\'s heap trim', () => {
  let dc: DeviceCloud | undefined;
  afterAll(async () => {
    await dc?.stop();
  });

  it('collects the garbage direct methods leave, when node exposes gc, and says so at debug level', async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-heap-trim' });
    const agent = dc.startAgent(`${TEST_TIMINGS},heapTrim=1`, { NODE_OPTIONS: '--expose-gc' });
    await agent.waitForState('ready');
    const trimmed = () => agent.lines.filter((l) => l.includes('event=heap.trimmed'));
    const deadline = Date.now() + 30_000;
    while (trimmed().length === 0 && Date.now() < deadline) {
      for (let i = 0; i < 50; i++) expect(await dc.invoke('ping')).toMatchObject({ status: 200 });
    }
    const line = trimmed()[0];
    expect(line, agent.lines.slice(-5).join('\n')).toBeDefined();
    const [before, after] = /heapMiB="([\d.]+) -> ([\d.]+)"/.exec(line!)!.slice(1).map(Number);
    expect(before! - after!).toBeGreaterThanOrEqual(0.5);
  }, 60_000);
});
