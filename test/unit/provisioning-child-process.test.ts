import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { registerInChild } from '../../agent/provisioning/child-process.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import type { ProvisionStep } from '../../agent/provisioning/register.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import { freePort } from '../support/ports.js';
import { clientFor } from '../support/tpm.js';
import { capturingLogger } from './command-context.js';
import { dpsBench, throughProxy, type DpsBench } from './dps-bench.js';

/**
 * registerInChild with its real helper, the built dist/agent/provisioning/child-main.js (the
 * helper runs as JavaScript, as it does on a board), against the local DPS and a swtpm.
 */
const HELPER = fileURLToPath(new URL('../../dist/agent/provisioning/child-main.js', import.meta.url));

function requireHelper(): void {
  if (!existsSync(HELPER)) throw new Error(`${HELPER} is missing: run npm run build (the provisioning helper runs from the build)`);
}

/** The bench, with the built helper there to start. */
async function board(): Promise<DpsBench> {
  requireHelper();
  return dpsBench();
}

const tpms: TpmClient[] = [];
afterEach(async () => {
  await Promise.all(tpms.splice(0).map((tpm) => tpm.close()));
});

/** This process's own client of the board's TPM, which lends the TPM to the helper. */
function tpmOf(bench: DpsBench): TpmClient {
  const tpm = clientFor(bench.swtpm.transport, { commandTimeoutMs: 10_000 });
  tpms.push(tpm);
  return tpm;
}

describe('registration in the provisioning helper', () => {
  it('hands each step to onStep and each Date to onDate, resolves with the assignment, and gives the TPM back', async () => {
    const bench = await board();
    const tpm = tpmOf(bench);
    const steps: [ProvisionStep, string | undefined][] = [];
    const readings: unknown[][] = [];
    const assignment = await registerInChild({
      ...bench.target, tpm, onStep: (step, detail) => steps.push([step, detail]), onDate: (...reading) => readings.push(reading),
    });
    const hub = bench.cloud.hubs[0]!.hostName;
    expect(assignment).toEqual({ assignedHub: hub, deviceId: bench.deviceId });
    expect(steps).toEqual([['challenge', undefined], ['activated', undefined], ['assigned', `${hub} as ${bench.deviceId}`]]);
    expect(readings.length).toBeGreaterThanOrEqual(3);
    for (const [date, sentAt, receivedAt] of readings) {
      expect(Math.abs(Date.parse(date as string) - (receivedAt as number))).toBeLessThan(5_000);
      expect(sentAt).toBeLessThanOrEqual(receivedAt as number);
    }
    await expect(tpm.readPublic(new TPM_HANDLE(0x81000100))).resolves.toBeDefined();
  }, 60_000);

  it('goes through the proxy the caller was given, credentials and all', async () => {
    const bench = await board();
    const { result, connects } = await throughProxy((url) => registerInChild({ ...bench.target, tpm: tpmOf(bench), proxy: parseProxyUrl(url, 'the test') }));
    expect(result).toMatchObject({ deviceId: bench.deviceId });
    expect(connects).toContain(`${bench.target.globalEndpoint}:443`);
  }, 60_000);

  it('logs what the helper writes to stderr, under its name', async () => {
    const bench = await board();
    const { log, lines } = capturingLogger();
    const saved = process.env.NODE_OPTIONS;
    // Node prints where a process called exit: the helper does when it is done.
    process.env.NODE_OPTIONS = '--trace-exit';
    try {
      await registerInChild({ ...bench.target, tpm: tpmOf(bench), log });
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }
    expect(lines.some((line) => line.startsWith('level=warn event=child.output child="the provisioning process" pid='))).toBe(true);
  }, 60_000);
});

describe('registration in a provisioning helper that does not finish', () => {
  it('is stopped at the time limit: a retryable DpsError that points at the network path', async () => {
    const bench = await board();
    bench.cloud.dps.faults.latencyMs = 10_000;
    const err = await registerInChild({ ...bench.target, tpm: tpmOf(bench), timeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({
      message: 'the provisioning process did not finish within 2 s', retryable: true, operatorMustAct: false,
      hint: 'check the network path to DPS (a proxy or firewall holding the connection open)',
    });
  }, 60_000);

  it('is stopped when the lending TPM client closes: a retryable DpsError without that hint', async () => {
    const bench = await board();
    bench.cloud.dps.faults.latencyMs = 1_000;
    const tpm = tpmOf(bench);
    const err = await registerInChild({ ...bench.target, tpm, onStep: () => void tpm.close() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ message: 'the provisioning process was stopped', retryable: true, operatorMustAct: false, hint: undefined });
  }, 60_000);

  it('fails as a retryable DpsError that no operator needs to act on when there is no TPM, and the TPM is given back', async () => {
    requireHelper();
    const tpm = new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
    tpms.push(tpm);
    const err = await registerInChild({ tpm, registrationId: 'r1', idScope: '0ne1', globalEndpoint: 'dps.example', timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ retryable: true, operatorMustAct: false });
    // Lent and given back: the client's own commands run again (and fail below the TPM, which is absent).
    await expect(tpm.readPublic(new TPM_HANDLE(0x81010001))).rejects.toThrow(/swtpm/);
  });
});
