import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceCloud } from '../support/device-cloud.js';
import type { AgentProcess } from '../support/agent-process.js';

describe('cloud commands through direct methods and C2D envelopes (azure-iothub as the caller)', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;
  let rebootLog: string;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-cmd' });
    rebootLog = path.join(dc.dir, 'reboots.log');
    const script = path.join(dc.dir, 'fake-reboot.sh');
    writeFileSync(script, `#!/bin/sh\necho "reboot $*" >> ${rebootLog}\n`, { mode: 0o755 });
    process.env.IOT_AGENT_REBOOT_COMMAND = JSON.stringify([script, 'now']);
    process.env.IOT_AGENT_REBOOT_DELAY_SECONDS = '2';
    agent = dc.startAgent();
    await agent.waitForState('ready');
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('answers ping with liveness and versions', async () => {
    const answer = await dc.invoke('ping');
    expect(answer.status).toBe(200);
    expect(answer.payload).toMatchObject({ pong: true, agentVersion: '0.1.0', node: process.versions.node, state: 'ready' });
  });

  it('answers getSystemInfo with OS, kernel, CPU, memory, disks, interfaces and uptime', async () => {
    const answer = await dc.invoke('getSystemInfo');
    expect(answer.status).toBe(200);
    const info = answer.payload as {
      os: { kernel: string }; cpu: { cores: number }; memory: { totalBytes: number }; disks: unknown[]; network: { iface: string }[]; uptimeSeconds: number;
    };
    expect(info.os.kernel).toMatch(/^\d+\.\d+/);
    expect(info.cpu.cores).toBeGreaterThan(0);
    expect(info.memory.totalBytes).toBeGreaterThan(0);
    expect(info.disks.length).toBeGreaterThan(0);
    expect(info.network.some((n) => n.iface === 'lo')).toBe(true);
    expect(info.uptimeSeconds).toBeGreaterThan(0);
    expect('temperatureC' in info).toBe(true);
  });

  it('answers getLogs with at most the asked number of recent lines', async () => {
    const answer = await dc.invoke('getLogs', { lines: 5 });
    expect(answer.status).toBe(200);
    expect(answer.payload.lines).toHaveLength(5);
    expect((answer.payload.lines as string[]).every((l) => l.startsWith('time='))).toBe(true);
  });

  it('sets the telemetry interval within its range and reports it in the twin', async () => {
    const answer = await dc.invoke('setTelemetryInterval', { seconds: 1800 });
    expect(answer).toMatchObject({ status: 200, payload: { intervalSeconds: 1800, previous: 3600 } });
    await dc.waitFor('twin telemetry interval', async () => ((await dc.reported()).telemetry as { intervalSeconds?: number })?.intervalSeconds === 1800);
  });

  it('refuses an unknown command with 404 listing the known ones', async () => {
    const answer = await dc.invoke('selfDestruct', {});
    expect(answer.status).toBe(404);
    expect(answer.payload.message).toMatch(/unknown command "selfDestruct"; known commands: ping, getSystemInfo/);
    expect(answer.payload.known).toContain('reboot');
  });

  it.each([
    ['setTelemetryInterval', { seconds: 0 }, 'seconds', /out of range/],
    ['setTelemetryInterval', { seconds: '60' }, 'seconds', /expected a whole number/],
    ['setTelemetryInterval', {}, 'seconds', /is required/],
    ['getLogs', { lines: 1.5 }, 'lines', /whole number/],
    ['ping', { extra: 1 }, 'extra', /unknown argument/],
    ['applyHardening', { profile: '../etc/passwd' }, 'profile', /profile name/],
    ['getLogs', [1, 2], 'args', /expected a JSON object/],
  ])('refuses invalid arguments with 400 naming the field: %s %j', async (name, payload, field, reason) => {
    const answer = await dc.invoke(name, payload);
    expect(answer.status).toBe(400);
    expect(answer.payload.field).toBe(field);
    expect(String(answer.payload.reason)).toMatch(reason);
    expect(String(answer.payload.message)).not.toMatch(/\n\s+at /);
  });

  it('runs a command from a C2D envelope once and reports its result as D2C with the envelope id', async () => {
    await dc.sendC2d({ command: 'ping', args: {}, id: 'env-1' });
    const [result] = await dc.waitFor('result of env-1', () => dc.results('env-1').length ? dc.results('env-1') : undefined);
    expect(result).toMatchObject({ command: 'ping', status: 200, via: 'c2d', id: 'env-1', payload: { pong: true } });
    await dc.sendC2d({ command: 'ping', args: {}, id: 'env-1' });
    const again = await dc.waitFor('second result of env-1', () => dc.results('env-1').length > 1 ? dc.results('env-1') : undefined);
    expect(again[1]).toMatchObject({ status: 208, payload: { duplicate: true } });
  });

  it('reboots once after acknowledging, through the configured program, and refuses a second reboot or another exclusive command while pending', async () => {
    const first = await dc.invoke('reboot');
    expect(first).toMatchObject({ status: 202, payload: { accepted: true, delaySeconds: 2 } });
    const second = await dc.invoke('reboot');
    expect(second.status).toBe(409);
    expect(second.payload.message).toMatch(/reboot is in progress/);
    const other = await dc.invoke('reprovision');
    expect(other).toMatchObject({ status: 409, payload: { running: 'reboot' } });
    await dc.waitFor('reboot program ran', () => existsSync(rebootLog));
    expect(readFileSync(rebootLog, 'utf8')).toBe('reboot now\n');
    const final = await dc.waitFor('reboot result', () => dc.results().find((r) => r.command === 'reboot' && r.phase === 'final'));
    expect(final).toMatchObject({ status: 200, via: 'method', payload: { message: 'reboot started' } });
    expect((await dc.invoke('reboot')).payload.message).toBe('a reboot is already pending');
  });
});
