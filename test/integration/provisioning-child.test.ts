import { fork } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { registerInChild } from '../../agent/provisioning/child-process.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { registerWithDps, type ProvisionStep } from '../../agent/provisioning/register.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { TPM_ALG_ID, TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { AgentProcess, type AgentFiles } from '../support/agent-process.js';
import { enrollBoard, readBoardIdentity } from '../support/enroll-board.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';
import { stringContaining, stringMatching } from '../support/matchers.js';

const CHILD_MAIN = fileURLToPath(new URL('../../dist/agent/provisioning/child-main.js', import.meta.url));

/** Pids of processes whose parent is `parent` and whose command line runs the provisioning child. */
function provisioningChildrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('child-main.js')) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('registration with DPS in a short-lived child process', () => {
  let dir: string;
  let cloud: LocalCloud;
  let swtpm: SwtpmInstance;
  let tpm: TpmClient;
  let registrationId: string;
  let files: AgentFiles;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-provision-child-'));
    [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    tpm = clientFor(swtpm.transport);
    const board = await enrollBoard(cloud.dps, {
      deviceId: 'board-41', transport: swtpm.transport, hub: cloud.hubs[0]!.hostName, identity: await readBoardIdentity(tpm),
    });
    registrationId = board.registrationId;
    files = board.writeConfig(path.join(dir, 'agent'));
  }, 60_000);
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    cloud.dps.faults.clear();
  });
  afterAll(async () => {
    await tpm?.close();
    await cloud?.stop();
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const options = () => ({ tpm, registrationId, idScope: cloud.dps.idScope, globalEndpoint: cloud.dps.host, ca: cloud.ca });

  it('is assigned a hub, reporting each step, and this process\'s TPM connection works again afterwards', async () => {
    const steps: [ProvisionStep, string | undefined][] = [];
    const assignment = await registerInChild({ ...options(), onStep: (step, detail) => steps.push([step, detail]) });
    expect(assignment).toEqual({ assignedHub: cloud.hubs[0]!.hostName, deviceId: 'board-41' });
    expect(steps).toEqual([['challenge', undefined], ['activated', undefined], ['assigned', `${cloud.hubs[0]!.hostName} as board-41`]]);
    expect(provisioningChildrenOf(process.pid)).toEqual([]);
    expect((await ensureIdentity(tpm)).identityKeyPresent).toBe(true);
  }, 60_000);

  it('writes the hub key to the slot it is given, and hands each of DPS\'s Date headers to the caller\'s clock', async () => {
    const readings: { date: string | undefined; sentAt: number; receivedAt: number }[] = [];
    await registerInChild({ ...options(), identityKeyHandle: IDENTITY_KEY_SLOTS[1], onDate: (date, sentAt, receivedAt) => readings.push({ date, sentAt, receivedAt }) });
    // The challenge, the signed registration and at least one status poll: each answer has a Date.
    expect(readings.length).toBeGreaterThanOrEqual(3);
    for (const { date, sentAt, receivedAt } of readings) {
      expect(Math.abs(Date.parse(date!) - receivedAt)).toBeLessThan(5_000);
      expect(sentAt).toBeLessThanOrEqual(receivedAt);
    }
    const key = await tpm.readPublic(new TPM_HANDLE(IDENTITY_KEY_SLOTS[1]));
    expect(key.outPublic.type).toBe(TPM_ALG_ID.KEYEDHASH);
  }, 60_000);

  it('runs the helper without the daemon\'s V8 memory flags, so that nothing lands in the daemon\'s log', async () => {
    const lines: string[] = [];
    const log = new Logger({ level: 'debug', write: (l) => lines.push(l) });
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = '--max-semi-space-size=1 --jitless';
    try {
      await registerInChild({ ...options(), log });
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }
    expect(lines.filter((l) => l.includes('child.output'))).toEqual([]);
  }, 60_000);

  it('reports throttling as the same retryable DpsError, with the Retry-After DPS sent', async () => {
    cloud.dps.faults.throttleNext(1, 7);
    const err = await registerInChild(options()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 7_000 });
    expect((err as DpsError).message).toContain('is throttling registrations (429)');
    cloud.dps.faults.failNext(1);
    expect(await registerInChild(options()).catch((e: unknown) => e)).toMatchObject({ retryable: true, message: stringContaining('(503)') });
  }, 60_000);

  it('hands a refusal over with the class, every field and the cause chain the registration made in-process', async () => {
    const refused = { ...options(), registrationId: 'never-enrolled' };
    const inProcess = await registerWithDps(refused).catch((e: unknown) => e) as DpsError;
    const viaChild = await registerInChild(refused).catch((e: unknown) => e) as DpsError;
    expect(inProcess).toBeInstanceOf(DpsError);
    expect(viaChild).toBeInstanceOf(DpsError);
    expect(viaChild.constructor).toBe(inProcess.constructor);
    expect(Object.keys(viaChild)).toEqual(Object.keys(inProcess));
    for (const key of Object.keys(inProcess)) expect((viaChild as never)[key], key).toEqual((inProcess as never)[key]);
    expect(viaChild).toMatchObject({ retryable: false, hint: stringMatching(/enrollment/) });
    expect(viaChild.message).toBe(inProcess.message);
    expect((viaChild.cause as Error).message).toBe((inProcess.cause as Error).message);
    expect(viaChild.stack).toContain('serve-registration.js');
  }, 60_000);

  it('gives a clean, retryable error when the child is killed mid-registration, and the TPM is usable again', async () => {
    cloud.dps.faults.latencyMs = 1_500;
    const pending = registerInChild(options()).catch((e: unknown) => e);
    const [child] = await waitFor('the provisioning child', () => {
      const pids = provisioningChildrenOf(process.pid);
      return pids.length ? pids : undefined;
    });
    process.kill(child!, 'SIGKILL');
    const err = await pending;
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ retryable: true, message: stringContaining('ended before answering (signal SIGKILL)') });
    expect((await ensureIdentity(tpm)).registrationId).toBe(registrationId);
  }, 60_000);

  it('is bounded in time: a registration that hangs is stopped and reported', async () => {
    cloud.dps.faults.latencyMs = 10_000;
    const t0 = performance.now();
    const err = await registerInChild({ ...options(), timeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(err).toMatchObject({ retryable: true, message: stringContaining('did not finish within 2 s') });
    expect(provisioningChildrenOf(process.pid)).toEqual([]);
    cloud.dps.faults.latencyMs = 0;
    expect((await ensureIdentity(tpm)).registrationId).toBe(registrationId);
  }, 60_000);

  it('is stopped when the TPM client that lent it the TPM is closed', async () => {
    cloud.dps.faults.latencyMs = 10_000;
    const own = clientFor(swtpm.transport);
    const pending = registerInChild({ ...options(), tpm: own }).catch((e: unknown) => e);
    const [child] = await waitFor('the provisioning child', () => {
      const pids = provisioningChildrenOf(process.pid);
      return pids.length ? pids : undefined;
    });
    await own.close();
    expect(await pending).toMatchObject({ message: stringContaining('the provisioning process was stopped') });
    expect(alive(child!)).toBe(false);
  }, 60_000);

  it('answers a malformed request with a failure naming the field, and exits', async () => {
    const child = fork(CHILD_MAIN, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const answer = new Promise<unknown>((resolve) => child.once('message', resolve));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.send({ transport: 'swtpm:host=127.0.0.1,port=2321', registrationId: 'x', idScope: '0ne1', globalEndpoint: 'dps', shell: 'sh -c reboot' });
    expect(await answer).toMatchObject({ kind: 'failed', error: { $error: 'ChildMessageError', message: stringContaining('unknown field "shell"') } });
    expect(await exited).toBe(1);
  }, 30_000);

  it('ends with its parent: a daemon stopped by SIGTERM mid-registration leaves no child, and so does a daemon killed outright', async () => {
    // swtpm serves one connection at a time: this process lends its own to the daemons.
    await tpm.lend(() => daemonsEndingMidRegistration());
  }, 60_000);

  async function daemonsEndingMidRegistration(): Promise<void> {
    for (const how of ['SIGTERM', 'SIGKILL'] as const) {
      // Every DPS answer takes 3 s: once the challenge is in, the rest takes the child 7 s or more.
      cloud.dps.faults.latencyMs = 3_000;
      rmSync(path.join(files.stateDir, 'assignment.json'), { force: true });
      const agent = AgentProcess.start(files);
      agents.push(agent);
      await agent.waitForLog('event=provisioning.challenge', 20_000);
      const [child] = provisioningChildrenOf(agent.child.pid!);
      expect(child, `the daemon's provisioning child (${how})`).toBeDefined();
      if (how === 'SIGTERM') {
        const stopped = await agent.stop();
        expect(stopped.ms).toBeLessThan(3_000);
        expect(agent.lines.some((l) => l.includes('event=daemon.stop_timeout'))).toBe(false);
      } else {
        agent.kill();
      }
      await waitFor(`the child to end within 2 s of the daemon's ${how}`, () => (alive(child!) ? undefined : true), 2_000);
    }
  }
});
