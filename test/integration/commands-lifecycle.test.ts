import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../agent/lib/errors.js';
import type { AgentProcess } from '../support/agent-process.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { NetnsPair, requireHardeningTools } from '../support/netns.js';

type Result = { command: string; status: number; phase: string; via: string; id?: string; payload: Record<string, unknown> & { report: { hash: string } } };

/**
 * The long and exclusive commands end to end. Hardening is applied inside a network
 * namespace and a root directory this test created (IOT_AGENT_HARDENING_TEST), confirmed
 * against a TLS server in the peer namespace: never this machine's firewall or /etc.
 */
describe('hardening, reprovision, reboot and restart commands, by direct method and by C2D envelope', () => {
  let dc: DeviceCloud;
  let pair: NetnsPair;
  let root: string;
  let agent: AgentProcess;
  let rebootLog: string;

  const results = (): Result[] => dc.d2c('command-result').map((m) => JSON.parse(m.body.toString('utf8')) as Result);
  const finalOf = (match: (r: Result) => boolean) => dc.waitFor('a final command result', () => results().find((r) => r.phase !== 'accepted' && match(r)), 30_000);
  const envelope = (command: string, id: string, args: unknown = {}) => dc.sendC2d({ command, args, id });

  beforeAll(async () => {
    requireHardeningTools(['ip', 'iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-cmd-harden-'));
    await pair.serveTls(path.join(root, 'tls'), 8883);
    mkdirSync(path.join(root, 'etc'), { recursive: true });
    dc = await DeviceCloud.start({ deviceId: 'board-life', hardening: { netns: pair.device, root, confirm: `${pair.peerAddress}:8883` } });
    rebootLog = path.join(dc.dir, 'reboots.log');
    const script = path.join(dc.dir, 'fake-reboot.sh');
    writeFileSync(script, `#!/bin/sh\necho "reboot $*" >> ${rebootLog}\n`, { mode: 0o755 });
    process.env.IOT_AGENT_REBOOT_COMMAND = JSON.stringify([script]);
    process.env.IOT_AGENT_REBOOT_DELAY_SECONDS = '0';
    agent = dc.startAgent();
    await agent.waitForState('ready');
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('reports no hardening before any profile was applied', async () => {
    const answer = await dc.invoke('getHardeningStatus');
    expect(answer).toMatchObject({ status: 200, payload: { profile: null, appliedHash: null } });
  });

  it('applies a profile by direct method as a confirmed transaction, then reports the result and the status', async () => {
    const ack = await dc.invoke('applyHardening', { profile: 'strict', confirmTimeoutSec: 10 });
    expect(ack).toMatchObject({ status: 202, payload: { accepted: true, profile: 'strict', confirmTimeoutSec: 10 } });
    const final = await finalOf((r) => r.command === 'applyHardening' && r.via === 'method');
    expect(final).toMatchObject({ status: 200, payload: { report: { profile: 'strict', confirmed: true, rolledBack: false } } });
    const status = await dc.invoke('getHardeningStatus');
    expect(status).toMatchObject({ status: 200, payload: { profile: 'strict', confirmed: true, drift: 0, appliedHash: final.payload.report.hash } });
    await dc.waitFor('twin hardening', async () => ((await dc.reported()).hardening as { profile?: string }).profile === 'strict');
    // The rules went into the test's namespace.
    expect((await pair.exec(pair.device, ['iptables-nft-save', '-t', 'filter'])).stdout).toMatch(/IOT-AGENT/i);
  }, 60_000);

  it('applies a profile from a C2D envelope and from the desired hardeningProfile, acknowledged 202 then 200', async () => {
    await envelope('applyHardening', 'harden-1', { profile: 'baseline', confirmTimeoutSec: 10 });
    expect(await finalOf((r) => r.id === 'harden-1' && r.phase === 'final')).toMatchObject({ status: 200, payload: { report: { profile: 'baseline' } } });
    const { responseBody } = await dc.service.registry.updateTwin(dc.deviceId, { properties: { desired: { hardeningProfile: 'strict' } } }, '*');
    const version = (responseBody as unknown as { properties: { desired: { $version: number } } }).properties.desired.$version;
    const ack = await dc.waitFor('hardeningProfile ack 200', async () => {
      const a = (await dc.reported()).hardeningProfile as { ac: number; av: number } | undefined;
      return a && a.av === version && a.ac === 200 ? a : undefined;
    }, 30_000);
    expect(ack).toMatchObject({ value: 'strict', ac: 200 });
  }, 60_000);

  it('answers every quick command from a C2D envelope with a D2C result', async () => {
    const cases: [string, unknown, Record<string, unknown>][] = [
      ['ping', {}, { pong: true }],
      ['getSystemInfo', {}, { os: expect.any(Object) }],
      ['getLogs', { lines: 3 }, { count: 3 }],
      ['setTelemetryInterval', { seconds: 900 }, { intervalSeconds: 900 }],
      ['getHardeningStatus', {}, { profile: 'strict' }],
    ];
    for (const [command, args] of cases) await envelope(command, `quick-${command}`, args);
    for (const [command, , payload] of cases) {
      expect(await finalOf((r) => r.id === `quick-${command}`)).toMatchObject({ command, status: 200, via: 'c2d', payload });
    }
  });

  it('reboots from a C2D envelope through the configured program', async () => {
    await envelope('reboot', 'reboot-1');
    expect(await finalOf((r) => r.id === 'reboot-1' && r.phase === 'final')).toMatchObject({ status: 200, payload: { message: 'reboot started' } });
    expect(readFileSync(rebootLog, 'utf8')).toBe('reboot \n');
  });

  it('re-provisions through the daemon flow by direct method and by C2D, and reconnects', async () => {
    const registrations = dc.cloud.dps.counters.registrations;
    // The pending reboot above holds the exclusive slot in this process: start a fresh one.
    await dc.stopAgents();
    agent = dc.startAgent();
    await agent.waitForState('ready');
    expect(await dc.invoke('reprovision')).toMatchObject({ status: 202, payload: { accepted: true } });
    expect(await finalOf((r) => r.command === 'reprovision' && r.via === 'method' && r.phase === 'final'))
      .toMatchObject({ status: 200, payload: { deviceId: 'board-life', assignedHub: dc.hub.hostName } });
    await envelope('reprovision', 'reprov-1');
    expect(await finalOf((r) => r.id === 'reprov-1' && r.phase === 'final')).toMatchObject({ status: 200 });
    expect(dc.cloud.dps.counters.registrations).toBe(registrations + 2);
    await agent.waitForState('ready');
  }, 60_000);

  it(`restarts the agent by direct method and by C2D: a clean stop, exit code ${ExitCode.restartRequested} for systemd`, async () => {
    expect(await dc.invoke('restartAgent')).toMatchObject({ status: 202, payload: { exitCode: ExitCode.restartRequested } });
    await dc.waitFor('the agent exits', () => agent.child.exitCode !== null || undefined);
    expect(agent.child.exitCode).toBe(ExitCode.restartRequested);
    expect(agent.lines.some((l) => l.includes('event=daemon.stopped'))).toBe(true);
    agent = dc.startAgent();
    await agent.waitForState('ready');
    await envelope('restartAgent', 'restart-1');
    await dc.waitFor('the agent exits', () => agent.child.exitCode !== null || undefined);
    expect(agent.child.exitCode).toBe(ExitCode.restartRequested);
    agent = dc.startAgent();
    await agent.waitForState('ready');
    expect(await finalOf((r) => r.id === 'restart-1')).toMatchObject({ status: 202, via: 'c2d' });
    expect(existsSync(path.join(dc.files.stateDir, 'executed-commands.json'))).toBe(true);
  }, 60_000);
});
