import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { startDps } from '../cloud/dps/dps.js';
import { ensureServerCredentials } from '../cloud/tls.js';
import { runCli } from '../support/cli.js';
import { AgentProcess, agentStatus, writeAgentConfig, type AgentFiles } from '../support/agent-process.js';
import { enrollBoard, type EnrolledBoard } from '../support/enroll-board.js';
import { parseObject } from '../support/json.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';

describe('iot-agent run against the local cloud and a real swtpm', () => {
  let dir: string;
  let cloud: LocalCloud;
  let swtpm: SwtpmInstance;
  let board: EnrolledBoard;
  let registrationId: string;
  let files: AgentFiles;
  const agents: AgentProcess[] = [];

  const startAgent = (timings?: string) => {
    const agent = AgentProcess.start(files, timings);
    agents.push(agent);
    return agent;
  };
  const registrations = () => cloud.dps.counters.registrations;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-daemon-'));
    [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress(), randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    board = await enrollBoard(cloud.dps, { deviceId: 'board-30', transport: swtpm.transport, hub: cloud.hubs[0]!.hostName });
    registrationId = board.registrationId;
    files = board.writeConfig(path.join(dir, 'agent'));
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

  it('takes a fresh, enrolled device to ready, and the hub sees it connected', async () => {
    const connectsBefore = cloud.hubs[0]!.counters.connects;
    const agent = startAgent();
    const status = await agent.waitForState('ready');
    expect(status).toMatchObject({ registrationId, deviceId: 'board-30', assignedHub: cloud.hubs[0]!.hostName, daemon: 'running' });
    expect(typeof status.since).toBe('string');
    expect(cloud.hubs[0]!.counters.connects).toBeGreaterThan(connectsBefore);
    const state = parseObject(readFileSync(path.join(files.stateDir, 'assignment.json'), 'utf8'));
    expect(state).toMatchObject({ assignedHub: cloud.hubs[0]!.hostName, deviceId: 'board-30', idScope: cloud.dps.idScope });
    expect(agent.lines.some((l) => l.includes('event=state.changed') && l.includes('to=ready'))).toBe(true);
  }, 60_000);

  it('restarts warm from the cached assignment without asking DPS, and stops within 5 s of SIGTERM', async () => {
    const first = startAgent();
    await first.waitForState('ready');
    const stopped = await first.stop();
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(5_000);
    const before = registrations();
    const second = startAgent();
    await second.waitForState('ready');
    expect(registrations()).toBe(before);
    expect(second.lines.some((l) => l.includes('event=provisioning.cached'))).toBe(true);
  }, 60_000);

  it('reports the cached assignment while the daemon is stopped', async () => {
    const result = await agentStatus(files);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ state: 'stopped', daemon: 'not running', deviceId: 'board-30', registrationId });
  });

  it('waits as DPS tells it through three 429s and a 503, then succeeds', async () => {
    rmSync(path.join(files.stateDir, 'assignment.json'), { force: true });
    cloud.dps.faults.throttleNext(3, 1);
    cloud.dps.faults.failNext(1);
    const t0 = Date.now();
    const agent = startAgent();
    await agent.waitForState('ready', 45_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3_000);
    expect(agent.lines.filter((l) => l.includes('event=provisioning.failed') || l.includes('status 429')).length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('re-provisions when the hub deletes the device, and reaches ready again', async () => {
    const agent = startAgent();
    await agent.waitForState('ready');
    const before = registrations();
    await cloud.hubs[0]!.core.deleteDevice('board-30', undefined);
    expect(await agent.waitForLog('event=hub.rejected')).toContain('then=reprovision');
    await agent.waitForState('ready', 45_000);
    expect(registrations()).toBeGreaterThan(before);
  }, 60_000);

  it('treats a corrupt state file as not provisioned, logs it once, and provisions', async () => {
    writeFileSync(path.join(files.stateDir, 'assignment.json'), '{"kind":"iot-agent/assign');
    const before = registrations();
    const agent = startAgent();
    await agent.waitForState('ready');
    expect(agent.lines.filter((l) => l.includes('event=state.invalid'))).toHaveLength(1);
    expect(registrations()).toBe(before + 1);
  }, 60_000);

  it('reconnects after the hub was down', async () => {
    const agent = startAgent();
    await agent.waitForState('ready');
    await cloud.hubs[0]!.stopMqtt();
    await agent.waitForState('degraded');
    await new Promise((r) => setTimeout(r, 1_000));
    await cloud.hubs[0]!.startMqtt();
    await agent.waitForState('ready', 30_000);
  }, 60_000);

  it('moves to another hub when its enrollment moves and a technician re-provisions through the daemon', async () => {
    const agent = startAgent();
    await agent.waitForState('ready');
    const enrollment = cloud.dps.enrollment(registrationId)!;
    cloud.dps.enroll({ ...enrollment, iotHubs: [cloud.hubs[1]!.hostName] });
    const result = await runCli(['--config', files.configPath, 'provision', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { assignedHub: string; steps: { step: string }[] };
    expect(report.assignedHub).toBe(cloud.hubs[1]!.hostName);
    expect(report.steps.map((s) => s.step)).toEqual(['tpm', 'challenge', 'activated', 'assigned', 'connected']);
    expect(parseObject(readFileSync(path.join(files.stateDir, 'assignment.json'), 'utf8')).assignedHub).toBe(cloud.hubs[1]!.hostName);
    expect(await agent.waitForState('ready')).toMatchObject({ assignedHub: cloud.hubs[1]!.hostName });
    cloud.dps.enroll({ ...enrollment, iotHubs: [cloud.hubs[0]!.hostName] });
  }, 60_000);

  it('re-provisions with the new DPS when the ID scope and endpoint change on SIGHUP', async () => {
    const agent = startAgent();
    await agent.waitForState('ready');
    const address = randomLoopbackAddress();
    const tls = await ensureServerCredentials(path.join(dir, 'second-dps-tls'), [address]);
    const second = await startDps({ address, stateDir: path.join(dir, 'second-dps'), linkedHubs: cloud.hubs, tls, idScope: '0ne00SECOND' });
    try {
      const ek = cloud.dps.enrollment(registrationId)!.attestation;
      second.enroll({ registrationId, deviceId: 'board-30', iotHubs: [cloud.hubs[1]!.hostName], attestation: ek });
      const caFile = path.join(dir, 'both-cas.pem');
      writeFileSync(caFile, cloud.ca + tls.ca);
      writeAgentConfig(files.dir, { idScope: '0ne00SECOND', globalEndpoint: address, transport: swtpm.transport, caFile });
      agent.child.kill('SIGHUP');
      await agent.waitForLog('event=config.reloaded');
      await expect.poll(async () => (await agent.statusObject()).assignedHub, { timeout: 30_000 }).toBe(cloud.hubs[1]!.hostName);
      await agent.waitForState('ready');
      expect(second.counters.registrations).toBe(1);
      expect(JSON.parse(readFileSync(path.join(files.stateDir, 'assignment.json'), 'utf8'))).toMatchObject({ idScope: '0ne00SECOND', globalEndpoint: address });
    } finally {
      await agent.stop();
      await second.stop();
      files = board.writeConfig(files.dir);
    }
  }, 60_000);

  it('keeps running when swtpm restarts under it', async () => {
    const agent = startAgent();
    await agent.waitForState('ready');
    await swtpm.restart();
    await cloud.hubs[0]!.stopMqtt(); // the next connect must sign a token with the restarted TPM
    await agent.waitForState('degraded');
    await cloud.hubs[0]!.startMqtt();
    await agent.waitForState('ready', 30_000);
  }, 60_000);

  it('stays ready through several token renewals', async () => {
    const agent = startAgent('tokenLifetime=4,renewalMargin=2');
    await agent.waitForState('ready');
    const connects = cloud.hubs[0]!.counters.connects;
    await new Promise((r) => setTimeout(r, 7_000));
    expect(cloud.hubs[0]!.counters.connects).toBeGreaterThanOrEqual(connects + 2); // each renewal reconnects
    expect((await agent.statusObject()).state).toBe('ready');
  }, 60_000);

  it.each([
    ['provisioning:\n  idScope: 0ne0001\nlog:\n  level: chatty\n', 'log.level: "chatty" is not valid'],
    ['provisioning:\n  globalEndpoint: x.example\n', 'provisioning.idScope is missing'],
    ['tpm:\n  transport: nope\n', 'tpm.transport: invalid TPM transport "nope"'],
  ])('refuses to run with a bad config, exit 2 and one line: %j', async (text, message) => {
    const bad = path.join(dir, 'bad-config.yaml');
    writeFileSync(bad, text);
    const result = await runCli(['--config', bad, 'run']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(message);
  });

  it('provisions directly when the daemon is not running, showing each step and one summary line', async () => {
    const result = await runCli(['--config', files.configPath, 'provision', '--force']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n').filter(Boolean)).toEqual([
      `  TPM ready, registration id ${registrationId}`,
      '  DPS challenge received',
      '  key activated in the TPM',
      `  assigned to ${cloud.hubs[0]!.hostName} as board-30`,
      `  connected to ${cloud.hubs[0]!.hostName}`,
      `provisioned: board-30 on ${cloud.hubs[0]!.hostName} (registration id ${registrationId})`,
    ]);
  }, 60_000);

  it('names the failed step when DPS refuses the device', async () => {
    const other = board.writeConfig(path.join(dir, 'stranger'), { registrationId: 'never-enrolled' });
    const result = await runCli(['--config', other.configPath, 'provision']);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^iot-agent: provisioning failed at step "challenge": DPS .* refused the device \(401\).*hint: check that an individual enrollment exists/);
  }, 60_000);

  it('keeps its control socket owner-only and the TPM to itself while it runs', async () => {
    const agent = startAgent();
    await agent.waitForState('ready');
    expect(statSync(path.join(files.runtimeDir, 'control.sock')).mode & 0o777).toBe(0o600);
    const { TpmLock } = await import('../../agent/tpm/tpm-lock.js');
    await expect(TpmLock.acquire(files.runtimeDir, 'a test')).rejects.toThrow(/the TPM is in use by the iot-agent daemon/);
  }, 60_000);
});
