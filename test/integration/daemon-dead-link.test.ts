import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDps, type Dps } from '../cloud/dps/dps.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { ensureServerCredentials } from '../cloud/tls.js';
import { AgentProcess } from '../support/agent-process.js';
import { enrollBoard } from '../support/enroll-board.js';
import { FreezableProxy } from '../support/freezable-proxy.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';

const KEEPALIVE_SECONDS = 3;

/**
 * A link that dies silently (no FIN, no RST: a NAT or mobile network dropping its state) is
 * noticed by the MQTT keep-alive within a bounded time, not minutes later, and the agent
 * reconnects. The hub listens on a private port behind a relay on 8883 that can freeze.
 */
describe('a silently dead link', () => {
  let dir: string;
  let hub: LocalHub;
  let dps: Dps;
  let swtpm: SwtpmInstance;
  let proxy: FreezableProxy;
  let agent: AgentProcess;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-dead-link-'));
    const [hubAddress, dpsAddress] = [randomLoopbackAddress(), randomLoopbackAddress()];
    const tls = await ensureServerCredentials(path.join(dir, 'tls'), [hubAddress, dpsAddress]);
    hub = await startHub({ address: hubAddress, stateDir: path.join(dir, 'hub'), tls, mqttPort: 18883, log: () => undefined });
    proxy = await FreezableProxy.start({ host: hubAddress, port: 8883 }, { host: hubAddress, port: 18883 });
    dps = await startDps({ address: dpsAddress, stateDir: dir, linkedHubs: [hub], tls, retryAfterSeconds: 1 });
    swtpm = await SwtpmInstance.start();
    const board = await enrollBoard(dps, { deviceId: 'board-link', transport: swtpm.transport });
    const files = board.writeConfig(path.join(dir, 'agent'));
    agent = AgentProcess.start(files, `keepAlive=${KEEPALIVE_SECONDS}`);
    await agent.waitForState('ready');
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await proxy?.stop();
    await Promise.all([dps?.stop(), hub?.stop(), swtpm?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is noticed within about two keep-alive periods, and the agent reconnects over a fresh connection', async () => {
    expect(proxy.openConnections).toBeGreaterThanOrEqual(1);
    const connects = hub.counters.connects;
    const seen = agent.lines.length;
    const t0 = Date.now();
    proxy.freezeOpenConnections();
    // From the log rather than by polling status: the reconnect can be quicker than a poll.
    const deadline = t0 + 4 * KEEPALIVE_SECONDS * 1000;
    while (!agent.lines.slice(seen).some((l) => l.includes('event=hub.disconnected')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const noticedMs = Date.now() - t0;
    expect(agent.lines.slice(seen).some((l) => l.includes('event=hub.disconnected'))).toBe(true);
    expect(noticedMs).toBeLessThanOrEqual(3 * KEEPALIVE_SECONDS * 1000);
    await expect.poll(() => hub.counters.connects, { timeout: 20_000 }).toBeGreaterThan(connects);
    const status = await agent.waitForState('ready', 20_000);
    expect(Date.parse(String(status.since))).toBeGreaterThan(t0);
  }, 60_000);
});
