import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConnectedBoard, stopBench, stopBoards } from '../support/connected-features.js';
import { ofType, stringContaining } from '../support/matchers.js';

/**
 * Health telemetry and the disk queue of a board whose features follow a live hub session
 * through link losses, reconnects, restarts and the end of the daemon.
 */
afterEach(stopBoards);
afterAll(stopBench);

/** A minute's telemetry with seconds of 10 ms: a health message every 0.6 s (a minute each without the test's seconds). */
const FAST = { hooks: { telemetrySecondMs: 10 } };

const bodies = (board: ConnectedBoard, kind: string) => board.d2c(kind).map((m) => JSON.parse(m.body.toString('utf8')) as Record<string, unknown>);

describe('health telemetry', () => {
  it('goes out every interval while connected, telling the link and the daemon\'s state', async () => {
    const board = await ConnectedBoard.connected(FAST);
    await expect.poll(() => board.d2c('health').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(bodies(board, 'health')[0]).toMatchObject({
      connection: { state: 'connected', daemonState: 'ready', since: '2026-12-01T08:00:00.000Z' }, intervalSeconds: 60, queue: { dropped: 0 },
      uptimeSeconds: ofType(Number), memory: ofType(Object),
    });
  });

  it('is queued while the link is down, and delivered in order after the reconnect with what happened meanwhile', async () => {
    const board = await ConnectedBoard.connected(FAST);
    await expect.poll(() => board.d2c('health').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    const lost = new Promise((resolve) => board.session.once('lost', resolve));
    await board.hub.stopMqtt();
    await lost;
    await board.features.registry.execute('ping', {}, { via: 'c2d', id: 'while-down' });
    await expect.poll(() => board.features.queueFacts().depth, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    expect(board.features.queueFacts()).toMatchObject({ dropped: 0, oldestAgeSeconds: ofType(Number) });
    await board.hub.startMqtt();
    await board.session.connect();
    await expect.poll(() => board.results('while-down').length, { timeout: 10_000 }).toBe(1);
    const health = bodies(board, 'health');
    expect(health.map((h) => (h.connection as { state: string }).state)).toContain('disconnected');
    await expect.poll(() => board.features.queueFacts().depth, { timeout: 10_000 }).toBeLessThan(3);
  });

  it('stops with the daemon: nothing produced or sent after stop(), uploads refused and their outcome no longer queued', async () => {
    const board = await ConnectedBoard.connected(FAST);
    await expect.poll(() => board.d2c('health').length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    await board.features.stop();
    const sent = board.d2c().length;
    const queued = board.features.queueFacts().depth;
    const { final } = await board.features.registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect(await final).toMatchObject({ status: 503, payload: { message: stringContaining('not connected to the hub') } });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(board.d2c()).toHaveLength(sent);
    expect(board.features.queueFacts().depth).toBe(queued);
    expect(board.lines.filter((l) => /^level=(warn|error) event=telemetry\./.test(l))).toEqual([]);
    // The refusal's final outcome finds the queue closed: said in the log, never thrown.
    expect(board.events('command.result_not_queued')).toEqual(['level=warn event=command.result_not_queued err="the telemetry queue is closed"']);
  });
});

describe('the disk queue', () => {
  it('lives in the state directory: what a stopped agent left queued goes out after the next start', async () => {
    const first = await ConnectedBoard.create();
    await first.features.registry.execute('ping', {}, { via: 'c2d', id: 'left-queued' });
    await expect.poll(() => first.features.queueFacts().depth).toBe(1);
    await first.stop();
    const again = await ConnectedBoard.connected({ stateDir: first.config.stateDir, deviceId: first.deviceId });
    await expect.poll(() => again.results('left-queued').length, { timeout: 10_000 }).toBe(1);
    expect(again.results('left-queued')[0]).toMatchObject({ command: 'ping', status: 200, via: 'c2d' });
    expect(again.events('telemetry.queue_opened')).toEqual([
      `level=info event=telemetry.queue_opened component=telemetry dir=${first.config.stateDir}/telemetry depth=1 dropped=0 nextSeq=2`,
    ]);
  });

  it('holds at most the configured number of messages, dropping the oldest', async () => {
    const board = await ConnectedBoard.create({ config: (c) => { c.telemetry.queueLimit = 2; } });
    for (const id of ['q-1', 'q-2', 'q-3']) await board.features.registry.execute('ping', {}, { via: 'c2d', id });
    await expect.poll(() => board.features.queueFacts()).toMatchObject({ depth: 2, dropped: 1 });
    await board.session.connect();
    await expect.poll(() => board.results('q-3').length, { timeout: 10_000 }).toBe(1);
    expect(board.d2c('command-result').map((m) => m.systemProperties.cid)).toEqual(['q-2', 'q-3']);
    expect(await board.reportedWhen('telemetry', (t) => t.dropped === 1)).toMatchObject({ dropped: 1 });
  });
});

describe('a reloaded config', () => {
  it('applies a new interval at once, reported to the twin, and a new rate cap to the backlog', async () => {
    const board = await ConnectedBoard.create({ config: (c) => { c.telemetry.maxMessagesPerSecond = 50; } });
    for (let n = 1; n <= 6; n++) await board.features.registry.execute('ping', {}, { via: 'c2d', id: `r-${n}` });
    board.features.onConfigReloaded({ ...board.config, telemetry: { ...board.config.telemetry, intervalSeconds: 90, maxMessagesPerSecond: 1 } });
    await board.session.connect();
    expect(await board.reportedWhen('telemetry', (t) => t.intervalSeconds === 90)).toMatchObject({ intervalSeconds: 90 });
    await expect.poll(() => board.results('r-6').length, { timeout: 30_000 }).toBe(1);
    // At one a second, six messages take five seconds at least, however fast the link.
    const times = board.d2c('command-result').map((m) => Date.parse(m.enqueuedTime));
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(3_500);
  });
});

describe('a reconnect', () => {
  it('serves commands and desired patches on the new connection once, and reports the whole state again', async () => {
    const board = await ConnectedBoard.connected();
    await board.reportedWhen('commands', () => true);
    await board.reconnect();
    await board.reconnect();
    expect(await board.invoke('setTelemetryInterval', { seconds: 30 })).toMatchObject({ status: 200 });
    await board.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 40 }, id: 'after-reconnects' });
    await expect.poll(() => board.results('after-reconnects').length, { timeout: 10_000 }).toBe(1);
    await board.setDesired({ logLevel: 'debug' });
    await board.reportedWhen('logLevel', (a) => a.value === 'debug');
    expect(board.lines.filter((l) => l.includes('event=twin.desired_applied') && l.includes('key=logLevel'))).toHaveLength(1);
    expect(board.events('telemetry.interval_changed')).toEqual([
      'level=info event=telemetry.interval_changed component=telemetry from=60 to=30', 'level=info event=telemetry.interval_changed component=telemetry from=30 to=40',
    ]);
  });
});
