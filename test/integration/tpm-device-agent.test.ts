import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { AgentProcess } from '../support/agent-process.js';
import { runCli } from '../support/cli.js';
import { invokeMethod } from '../support/direct-method.js';
import { enrollBoard } from '../support/enroll-board.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { TpmDeviceBridge } from '../support/tpm-device-bridge.js';

/**
 * The board's default transport, `device:`, end to end: every TPM command of `tpm info`,
 * provisioning, the hub session and its token renewals goes through a character device
 * (a pseudo-terminal bridged to a real swtpm, one command per write, the whole response
 * per read) and the agent's asynchronous device I/O.
 */
describe('the whole agent over the device transport', () => {
  let dir: string;
  let cloud: LocalCloud;
  let swtpm: SwtpmInstance;
  let bridge: TpmDeviceBridge;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-device-'));
    [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    bridge = await TpmDeviceBridge.start(swtpm);
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    bridge?.stop();
    await cloud?.stop();
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the identity, provisions, reaches ready, answers a direct method and renews its token', async () => {
    const info = await runCli(['tpm', 'info', '--json', '--tpm', bridge.transport]);
    expect(info.stderr).toBe('');
    const identity = JSON.parse(info.stdout) as { registrationId: string; endorsementKey: string; transport: string };
    expect(identity.transport).toBe(bridge.transport);
    const board = await enrollBoard(cloud.dps, { deviceId: 'board-50', transport: bridge.transport, hub: cloud.hubs[0]!.hostName, identity });

    const files = board.writeConfig(path.join(dir, 'agent'));
    agent = AgentProcess.start(files, 'tokenLifetime=4,renewalMargin=2');
    const status = await agent.waitForState('ready', 45_000);
    expect(status).toMatchObject({ deviceId: 'board-50', registrationId: identity.registrationId });

    const service = serviceClients(cloud.hubs[0]!.serviceConnectionString, cloud.ca);
    const result = await invokeMethod(service.client, 'board-50', { methodName: 'ping', responseTimeoutInSeconds: 10 });
    expect(result).toMatchObject({ status: 200, payload: { pong: true } });

    const connects = cloud.hubs[0]!.counters.connects;
    await new Promise((r) => setTimeout(r, 6_000));
    expect(cloud.hubs[0]!.counters.connects).toBeGreaterThanOrEqual(connects + 1); // a renewal reconnects with a new token
    expect((await agent.statusObject()).state).toBe('ready');
  }, 90_000);
});
