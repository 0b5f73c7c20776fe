/**
 * The provisioning flow shared by the daemon and `iot-agent provision`: the TPM's identity,
 * what to do with the cached assignment, and one registration with DPS. Two ways to run it:
 * - the daemon on its own (decideAtStartup): a valid cache is used; failures go to the
 *   connection policy, which decides when to try again;
 * - a person asked, through `iot-agent provision` or the reprovision command
 *   (technicianDecision): one attempt in the open, each step shown, a failure told at once.
 * Either way a registration never touches the key of the assignment in force, so a
 * failed one leaves the device able to go back to its old hub.
 */
import type { AgentConfig } from '../config.js';
import type { Logger } from '../log/logger.js';
import type { Assignment, StoredAssignment } from '../state/assignment-store.js';
import { writeAssignment } from '../state/assignment-store.js';
import type { ServiceClock } from '../time/service-clock.js';
import { ensureIdentity, type DeviceIdentity } from '../tpm/identity.js';
import { stagingSlot } from '../tpm/key-slots.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import { decideAtStartup, type StartupDecision } from './decide.js';
import { endpointProxy } from '../network/proxy.js';
import { registerInChild } from './child-process.js';

/** The steps a technician sees, in order. */
export const PROVISION_STEPS = ['tpm', 'challenge', 'activated', 'assigned', 'connected'] as const;
export type ProvisionStep = (typeof PROVISION_STEPS)[number];
export type StepReporter = (step: ProvisionStep, words: string) => void;

/** How long a technician's `provision` waits for the hub once DPS has assigned. */
const HUB_WAIT_SECONDS = 60;

/** That wait in ms; `testSeconds`: IOT_AGENT_TEST_TIMINGS hubWait=, when a test shortens it. */
export function hubWaitMs(testSeconds: number | undefined): number {
  return (testSeconds ?? HUB_WAIT_SECONDS) * 1000;
}

export function stepWords(step: ProvisionStep, detail?: string): string {
  switch (step) {
    case 'tpm': return `TPM ready, registration id ${detail ?? '?'}`;
    case 'challenge': return 'DPS challenge received';
    case 'activated': return 'key activated in the TPM';
    case 'assigned': return `assigned to ${detail ?? 'a hub'}`;
    case 'connected': return `connected to ${detail ?? 'the hub'}`;
  }
}

/** The step after `done`, to name the one a failure happened in. */
export function stepAfter(done: ProvisionStep | undefined): ProvisionStep {
  // Before any step, `done` is in no place (-1): the step after it is the first.
  const steps: readonly (ProvisionStep | undefined)[] = PROVISION_STEPS;
  return PROVISION_STEPS[Math.min(steps.indexOf(done) + 1, PROVISION_STEPS.length - 1)]!;
}

/** The TPM's identity for this config (EK and SRK created when missing). */
export async function readyIdentity(tpm: TpmClient, config: AgentConfig, onStep?: StepReporter): Promise<DeviceIdentity> {
  const identity = await ensureIdentity(tpm, { registrationId: config.provisioning.registrationId });
  onStep?.('tpm', stepWords('tpm', identity.registrationId));
  return identity;
}

/** What `iot-agent provision` does with the cache: `--force` always registers; otherwise as the daemon does at start-up. */
export function technicianDecision(force: boolean, config: AgentConfig, idScope: string,
  registrationId: string, stored: StoredAssignment): StartupDecision {
  if (force) return { action: 'provision', reason: 'requested' };
  return decideAtStartup(config, idScope, registrationId, stored);
}

export interface RegistrationRequest {
  tpm: TpmClient;
  config: AgentConfig;
  idScope: string;
  registrationId: string;
  ca: string | undefined;
  /** The assignment in force, if any: the new key goes to the other slot, this one stays the fallback. */
  current: Assignment | undefined;
  clock?: ServiceClock;
  onStep?: StepReporter;
  /** Each step as an event, and the provisioning process's own output. */
  log?: Logger;
}

/**
 * One registration with DPS, in a short-lived process of its own (the DPS client never loads
 * here); the new assignment is on disk before it is returned.
 */
export async function registerAssignment(request: RegistrationRequest): Promise<Assignment> {
  const { config, idScope, registrationId } = request;
  const identityKeyHandle = stagingSlot(request.current?.identityKeyHandle);
  const result = await registerInChild({
    tpm: request.tpm, registrationId, idScope, globalEndpoint: config.provisioning.globalEndpoint, ca: request.ca, identityKeyHandle,
    proxy: endpointProxy(config.network, config.provisioning.globalEndpoint, 443),
    clockOffsetMs: request.clock?.offsetMs(),
    ...(request.log ? { log: request.log } : {}),
    onStep: (step, detail) => {
      request.log?.info(`provisioning.${step}`, detail ? { detail } : {});
      request.onStep?.(step, stepWords(step, detail));
    },
    onDate: (date, sentAt, receivedAt) => request.clock?.observe(date, sentAt, receivedAt),
  });
  const assignment: Assignment = {
    ...result, registrationId, idScope, globalEndpoint: config.provisioning.globalEndpoint,
    assignedAt: new Date().toISOString(), identityKeyHandle,
  };
  await writeAssignment(config.stateDir, assignment);
  return assignment;
}
