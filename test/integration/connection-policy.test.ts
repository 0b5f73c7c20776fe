import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { AgentProcess, type AgentFiles } from '../support/agent-process.js';
import { runCli } from '../support/cli.js';
import { invokeMethod } from '../support/direct-method.js';
import { enrollBoard, type EnrolledBoard } from '../support/enroll-board.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';

/**
 * The connection policy with real processes against the local cloud: how often a refused
 * device knocks, what a failed re-provisioning leaves behind, and a hub that is gone.
 */
describe('the connection policy, end to end', () => {
  let dir: string;
  let cloud: LocalCloud;
  let swtpm: SwtpmInstance;
  let service: ReturnType<typeof serviceClients>;
  let board: EnrolledBoard;
  const agents: AgentProcess[] = [];
  const DEVICE = 'board-40';

  const configFor = (name: string, provisioning: Record<string, string | number> = {}): AgentFiles => board.writeConfig(path.join(dir, name), {
    reprovision: typeof provisioning.reprovision === 'string' ? provisioning.reprovision : undefined,
    provisioning: Object.fromEntries(Object.entries(provisioning).filter(([k]) => k !== 'reprovision')),
  });
  const start = (files: AgentFiles, timings = '', options: Parameters<typeof AgentProcess.start>[2] = {}) => {
    const agent = AgentProcess.start(files, timings, options);
    agents.push(agent);
    return agent;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-policy-'));
    [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    board = await enrollBoard(cloud.dps, { deviceId: DEVICE, transport: swtpm.transport, hub: cloud.hubs[0]!.hostName });
    service = serviceClients(cloud.hubs[0]!.serviceConnectionString, cloud.ca);
  }, 60_000);
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    cloud.dps.faults.clear();
  });
  afterAll(async () => {
    await cloud?.stop();
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('with reprovision never, a refused device knocks at most ten times in its first minute and never asks DPS', async () => {
    const files = configFor('never', { reprovision: 'never' });
    const first = start(files);
    await first.waitForState('ready', 45_000);
    await first.stop();
    // The hub forgets the device: every connect is refused (the next test provisions afresh).
    await cloud.hubs[0]!.core.deleteDevice(DEVICE, undefined);
    const refusedBefore = cloud.hubs[0]!.counters.refused;
    const registrations = cloud.dps.counters.registrations;
    // The production backoff (1 s doubling to 5 min, full jitter), not the tests' fast one.
    const agent = start(files, 'backoff=default');
    await agent.waitForLog('event=hub.rejected', 15_000);
    await new Promise((r) => setTimeout(r, 60_000));
    const attempts = cloud.hubs[0]!.counters.refused - refusedBefore;
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(10);
    expect(cloud.dps.counters.registrations).toBe(registrations);
    const status = JSON.parse((await agent.status()).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ state: 'degraded' });
    // Every attempt since the last connection counts (on a loaded machine one may time out instead of being refused).
    expect(Number(status.consecutiveFailures)).toBeGreaterThanOrEqual(attempts);
    expect(String((status.lastError as { message: string }).message)).toMatch(/refused the device|could not be reached/);
  }, 120_000);

  it('keeps the old hub when a re-provisioning finds DPS down, and answers there within one backoff period', async () => {
    const files = configFor('dps-down');
    const agent = start(files);
    await agent.waitForState('ready', 45_000);
    const before = readFileSync(path.join(files.stateDir, 'assignment.json'), 'utf8');
    const registrations = cloud.dps.counters.registrations;
    cloud.dps.faults.failNext(1_000);
    const { status } = await invokeMethod(service.client, DEVICE, { methodName: 'reprovision', responseTimeoutInSeconds: 10 });
    expect(status).toBe(202);
    await agent.waitForLog('event=provisioning.failed', 15_000);
    const t0 = Date.now();
    await agent.waitForState('ready', 10_000);
    const ping = await invokeMethod(service.client, DEVICE, { methodName: 'ping', responseTimeoutInSeconds: 10 });
    expect(ping.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(readFileSync(path.join(files.stateDir, 'assignment.json'), 'utf8')).toBe(before);
    expect(cloud.dps.counters.registrations).toBe(registrations);
    // A technician's attempt meets the same DPS: one error line naming the step, and the agent stays on its hub.
    const cli = await runCli(['--config', files.configPath, 'provision']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^iot-agent: provisioning failed at step "challenge": .*unavailable \(503\)/);
    await agent.waitForState('ready', 10_000);
    cloud.dps.faults.clear();
  }, 90_000);

  it('goes back to DPS when the cached hub no longer resolves for hubUnreachableSeconds, and is ready on the real hub', async () => {
    // The knob shortens the config's floor of 30 s; the policy counts the same way.
    const files = configFor('gone-hub');
    const first = start(files);
    await first.waitForState('ready', 45_000);
    await first.stop();
    const assignmentFile = path.join(files.stateDir, 'assignment.json');
    const cached = JSON.parse(readFileSync(assignmentFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(assignmentFile, JSON.stringify({ ...cached, assignedHub: 'deleted-hub.azure-devices.invalid' }));
    // Name lookups go to a loopback address where nothing answers: the name never resolves, and nothing leaves this machine.
    const resolvConf = path.join(dir, 'resolv.conf');
    writeFileSync(resolvConf, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    const registrations = cloud.dps.counters.registrations;
    const t0 = Date.now();
    const agent = start(files, 'hubUnreachable=6', { resolvConf });
    await agent.waitForLog('event=hub.unreachable', 15_000);
    const status = await agent.waitForState('ready', 45_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(6_000);
    expect(status.assignedHub).toBe(cloud.hubs[0]!.hostName);
    expect(cloud.dps.counters.registrations).toBe(registrations + 1);
    expect(agent.lines.some((l) => l.includes('the hub has been unreachable for'))).toBe(true);
    const written = JSON.parse(readFileSync(assignmentFile, 'utf8')) as Record<string, unknown>;
    expect(written.assignedHub).toBe(cloud.hubs[0]!.hostName);
    // The new key went to the other slot: the old one was kept until DPS had answered.
    expect(written.identityKeyHandle).not.toBe(cached.identityKeyHandle);
  }, 90_000);
});
