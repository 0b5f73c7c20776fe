import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../support/agent-process.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { stringMatching } from '../support/matchers.js';

/**
 * Every command through azure-iothub with its payload omitted, null, {} and with arguments,
 * against a hub that sends a null or omitted payload as an empty body, as IoT Hub does
 * (azure-iot-sdk-c PR #2097): each answers as with {}, never the SDK's own 400.
 */
describe('the command suite with every kind of payload', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;
  let rebootLog: string;
  const KINDS = [['omitted', undefined], ['null', null], ['{}', {}]] as const;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-payloads' });
    rebootLog = path.join(dc.dir, 'reboots.log');
    const script = path.join(dc.dir, 'fake-reboot.sh');
    writeFileSync(script, `#!/bin/sh\necho "reboot $*" >> ${rebootLog}\n`, { mode: 0o755 });
    process.env.IOT_AGENT_REBOOT_COMMAND = JSON.stringify([script]);
    process.env.IOT_AGENT_REBOOT_DELAY_SECONDS = '1';
    agent = dc.startAgent();
    await agent.waitForState('ready');
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  const notTheSdks400 = (answer: { status: number; payload: unknown }) =>
    expect(JSON.stringify(answer.payload ?? null)).not.toMatch(/Invalid request format|Unexpected end of JSON input/);

  it.each(['ping', 'getSystemInfo', 'getHardeningStatus', 'getLogs'])('answers %s 200 with the payload omitted, null or {}', async (name) => {
    for (const [kind, payload] of KINDS) {
      const answer = await dc.invoke(name, payload);
      notTheSdks400(answer);
      expect(answer.status, `${name} with the payload ${kind}`).toBe(200);
    }
  });

  it('answers commands that need arguments as with {} when they are missing, and runs them with them', async () => {
    for (const [kind, payload] of KINDS) {
      for (const [name, field] of [['setTelemetryInterval', 'seconds'], ['applyHardening', 'profile']]) {
        const answer = await dc.invoke(name!, payload);
        notTheSdks400(answer);
        expect(answer, `${name} with the payload ${kind}`).toMatchObject({ status: 400, payload: { field, reason: 'is required' } });
      }
    }
    expect(await dc.invoke('setTelemetryInterval', { seconds: 30 })).toMatchObject({ status: 200, payload: { intervalSeconds: 30 } });
    expect((await dc.invoke('getLogs', { lines: 2 })).payload.lines).toHaveLength(2);
    expect(await dc.invoke('setTelemetryInterval', { seconds: 9 })).toMatchObject({ status: 400, payload: { field: 'seconds', reason: '9 is out of range: expected 10 to 86400' } });
  });

  it('answers 404 for an unknown method with or without a payload, and reports it under lastCommands.unknownCommand, a key queries can address', async () => {
    for (const [, payload] of KINDS) expect((await dc.invoke('selfDestruct', payload)).status).toBe(404);
    const lastCommands = await dc.waitFor('lastCommands.unknownCommand', async () => {
      const last = (await dc.reported()).lastCommands as Record<string, { status: number }> | undefined;
      return last?.unknownCommand?.status === 404 ? last : undefined;
    });
    expect(Object.keys(lastCommands).every((key) => /^[A-Za-z0-9_-]+$/.test(key))).toBe(true);
  });

  it('runs reprovision with the payload omitted, null or {}, each time back to ready', async () => {
    const finals = () => dc.d2c('command-result').map((m) => JSON.parse(m.body.toString('utf8')) as { command: string; phase: string; status: number })
      .filter((r) => r.command === 'reprovision' && r.phase === 'final');
    for (const [kind, payload] of KINDS) {
      const before = finals().length;
      const answer = await dc.invoke('reprovision', payload);
      expect(answer.status, `reprovision with the payload ${kind}`).toBe(202);
      const [final] = await dc.waitFor(`final result of reprovision (${kind})`, () => (finals().length > before ? finals().slice(before) : undefined), 60_000);
      expect(final!.status).toBe(200);
      await agent.waitForState('ready', 60_000);
    }
  }, 180_000);

  it('runs restartAgent with the payload omitted, null or {}: acknowledged, then exit code 75', async () => {
    for (const [kind, payload] of KINDS) {
      const answer = await dc.invoke('restartAgent', payload);
      expect(answer, `restartAgent with the payload ${kind}`).toMatchObject({ status: 202, payload: { exitCode: 75 } });
      const { code } = await new Promise<{ code: number | null }>((resolve) => agent.child.once('close', (c) => resolve({ code: c })));
      expect(code).toBe(75);
      agent = dc.startAgent();
      await agent.waitForState('ready');
    }
  }, 120_000);

  it('runs reboot with the payload omitted, then refuses it while pending with null or {} (the handler\'s 409, not the SDK\'s 400)', async () => {
    expect(await dc.invoke('reboot', undefined)).toMatchObject({ status: 202 });
    for (const payload of [null, {}]) expect(await dc.invoke('reboot', payload)).toMatchObject({ status: 409, payload: { message: stringMatching(/reboot/) } });
    await dc.waitFor('reboot program ran', () => existsSync(rebootLog));
  });

  it('records a C2D envelope\'s id only once it is accepted: a corrected resend of a refused envelope runs, a second one is a duplicate', async () => {
    await dc.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 5 }, id: 'fix-1' });
    await dc.waitFor('the refusal of fix-1', () => dc.results('fix-1').length === 1);
    await dc.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 40 }, id: 'fix-1' });
    await dc.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 40 }, id: 'fix-1' });
    const results = await dc.waitFor('three results for fix-1', () => (dc.results('fix-1').length === 3 ? dc.results('fix-1') : undefined));
    expect(results[0]!.status).toBe(400);
    expect(results.slice(1).map((r) => r.status).sort()).toEqual([200, 208]); // the duplicate may be answered before the run ends
  });

  it('never sends a reported patch the hub refuses for its limits', () => {
    expect(dc.hub.counters.reportedRefused).toBe(0);
  });
});
