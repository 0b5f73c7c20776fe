import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../agent/commands/registry.js';
import type { AgentProcess } from '../support/agent-process.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { Fuzz } from '../support/fuzz.js';

const METHOD_CASES = 600;
const C2D_CASES = 420;

describe('hostile input: 1,000+ generated payloads through direct methods and C2D', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;

  beforeAll(async () => {
    // A rate cap well above the default: 420 results must come back within a minute.
    dc = await DeviceCloud.start({ deviceId: 'board-fuzz', telemetry: { maxMessagesPerSecond: 200 } });
    // Reboot is never valid input here, but should a generator bug make it so, nothing reboots.
    process.env.IOT_AGENT_REBOOT_COMMAND = JSON.stringify(['/bin/true']);
    agent = dc.startAgent();
    await agent.waitForState('ready');
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it(`answers ${METHOD_CASES} generated direct-method calls with 4xx and a message, and still answers ping`, async () => {
    const fuzz = new Fuzz(0x5eed);
    const known = COMMANDS.map((c) => c.name);
    const failures: string[] = [];
    for (let i = 0; i < METHOD_CASES; i++) {
      const unknown = fuzz.next() < 0.3;
      const name = unknown ? fuzz.unknownName() : fuzz.pick(known);
      const payload = unknown ? fuzz.json() : fuzz.invalidArgs();
      const answer = await dc.invoke(name, payload);
      const expected = unknown ? 404 : 400;
      const message = (answer.payload as { message?: unknown } | null)?.message;
      if (answer.status !== expected || typeof message !== 'string' || message.length === 0 || /\n\s+at /.test(message)) {
        failures.push(`${name} ${JSON.stringify(payload)?.slice(0, 80)} -> ${answer.status} ${JSON.stringify(answer.payload)?.slice(0, 120)}`);
      }
    }
    expect(failures).toEqual([]);
    expect((await dc.invoke('ping')).status).toBe(200);
  }, 120_000);

  it(`answers ${C2D_CASES} generated C2D bodies (invalid UTF-8, non-JSON, wrong types, unknown commands, bad ids) with a 4xx result each`, async () => {
    const fuzz = new Fuzz(0xc2d);
    const known = COMMANDS.map((c) => c.name);
    const ids: string[] = [];
    for (let i = 0; i < C2D_CASES; i++) {
      const id = `fuzz-${i}`;
      ids.push(id);
      let body: Buffer;
      switch (i % 4) {
        case 0: body = fuzz.c2dBody(); break;
        case 1: body = Buffer.from(JSON.stringify({ command: fuzz.unknownName(), args: fuzz.json(), id })); break;
        case 2: body = Buffer.from(JSON.stringify({ command: fuzz.pick(known), args: fuzz.invalidArgs(), id })); break;
        default: body = Buffer.from(JSON.stringify({ command: fuzz.json(), args: fuzz.json(), id: fuzz.pick([undefined, 42, '', 'a/b', 'x'.repeat(200), ['id']]) }));
      }
      await dc.sendC2d(body.subarray(0, 60_000), id);
    }
    const results = await dc.waitFor('a result for every C2D message', () => {
      const byId = new Map(dc.d2c('command-result').map((m) => [m.systemProperties.cid, JSON.parse(m.body.toString('utf8'))]));
      return ids.every((id) => byId.has(id)) ? byId : undefined;
    }, 60_000);
    const bad = ids.filter((id) => {
      const r = results.get(id) as { status: number; payload: { message?: string } };
      return !(r.status >= 400 && r.status < 500 && typeof r.payload.message === 'string' && r.payload.message.length > 0);
    });
    expect(bad).toEqual([]);
    expect((await dc.invoke('ping')).status).toBe(200);
    expect(agent.child.exitCode).toBeNull();
    expect(agent.lines.filter((l) => /uncaught|unhandled/.test(l))).toEqual([]);
  }, 120_000);
});
