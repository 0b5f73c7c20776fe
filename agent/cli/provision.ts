import { caBundle, loadTrust } from '../check/trust.js';
import { loadConfig, requireIdScope, type AgentConfig } from '../config.js';
import { AgentError, exitCodeOf } from '../lib/errors.js';
import { DaemonAbsentError, payloadOf, requestDaemon } from '../control/client.js';
import type { DaemonStatus } from '../control/protocol.js';
import { TpmLock } from '../tpm/tpm-lock.js';
import { HubConnectError, HubSession } from '../hub/session.js';
import { retryUntilDeadline } from '../lib/deadline.js';
import { Logger } from '../log/logger.js';
import { hubWaitMs, readyIdentity, registerAssignment, stepAfter, stepWords, technicianDecision, type ProvisionStep } from '../provisioning/flow.js';
import type { RuntimeOverrides } from '../runtime-overrides.js';
import { readAssignment, type Assignment } from '../state/assignment-store.js';
import { ServiceClock } from '../time/service-clock.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { parseTransport } from '../config/transport-spec.js';

export interface ProvisionOptions {
  config?: string;
  force?: boolean;
  json?: boolean;
}

interface Step {
  step: ProvisionStep;
  message: string;
}

/** The end of a registration: the daemon's status after it, or the assignment this command made. */
type Provisioned = DaemonStatus | ({ state: 'provisioned' } & Assignment);

/**
 * `iot-agent provision`: register with DPS now, in technician mode (agent/provisioning/flow.ts).
 * Through the daemon when it runs (it owns the TPM), directly otherwise. Each step is shown
 * as it happens; the end is one summary line, or one error line naming the step that failed.
 */
export async function provision(options: ProvisionOptions, overrides: RuntimeOverrides): Promise<number> {
  const config = await loadConfig(options.config);
  const idScope = requireIdScope(config, options.config);
  const steps: Step[] = [];
  let failedAt: ProvisionStep = stepAfter(undefined);
  const show = (step: ProvisionStep, message: string) => {
    failedAt = stepAfter(step);
    steps.push({ step, message });
    if (!options.json) process.stdout.write(`  ${message}\n`);
  };
  try {
    let result: Provisioned;
    try {
      result = await viaDaemon(config, show);
    } catch (err) {
      if (!(err instanceof DaemonAbsentError)) throw err;
      result = await directly(config, idScope, options.force === true, overrides, show);
    }
    const summary = `provisioned: ${result.deviceId ?? '?'} on ${result.assignedHub ?? '?'} (registration id ${result.registrationId ?? '?'})`;
    if (options.json) process.stdout.write(`${JSON.stringify({ ...result, steps })}\n`);
    else process.stdout.write(`${summary}\n`);
    return 0;
  } catch (err) {
    // The cause's exit code stands: a TPM that does not answer is 3, whichever step needed it.
    throw new AgentError(`provisioning failed at step "${failedAt}"`, { cause: err, hint: err instanceof AgentError ? err.hint : undefined, exitCode: exitCodeOf(err) });
  }
}

async function viaDaemon(config: AgentConfig, show: (step: ProvisionStep, message: string) => void): Promise<DaemonStatus> {
  let last: DaemonStatus | undefined;
  for await (const line of requestDaemon(config.runtimeDir, { op: 'provision', force: true })) {
    if (line.event === 'step') show(line.step, line.message);
    else if (line.event === 'error') throw new AgentError(line.message);
    else if (line.event === 'done') last = payloadOf(line);
  }
  if (!last) throw new AgentError('the daemon ended the request without a result');
  return last;
}

async function directly(config: AgentConfig, idScope: string, force: boolean, overrides: RuntimeOverrides,
  show: (step: ProvisionStep, message: string) => void): Promise<Provisioned> {
  const lock = await TpmLock.acquire(config.runtimeDir, 'iot-agent provision');
  const transport = overrides.tpmTransport ?? config.tpm.transport;
  const tpm = new TpmClient(openTransport(parseTransport(transport)));
  // DPS's time (learnt from its answers) signs the hub token too when this clock is off.
  const clock = new ServiceClock();
  try {
    const identity = await readyIdentity(tpm, config, show);
    const trust = await loadTrust(config.tls.extraCaFile);
    if (!trust.ok) throw new AgentError(trust.problem, { hint: trust.hint });
    const ca = caBundle(trust);
    const stored = await readAssignment(config.stateDir);
    const decision = technicianDecision(force, config, idScope, identity.registrationId, stored);
    let assignment: Assignment;
    if (decision.action === 'useCached') {
      assignment = decision.assignment;
      show('assigned', `already assigned to ${assignment.assignedHub} as ${assignment.deviceId} (use --force to register again)`);
    } else {
      const current = stored.status === 'valid' ? stored.assignment : undefined;
      assignment = await registerAssignment({ tpm, config, idScope, registrationId: identity.registrationId, ca, current, onStep: show, clock });
    }
    await connectOnce(tpm, assignment, ca, clock, hubWaitMs(overrides.timings?.hubWaitSeconds));
    show('connected', stepWords('connected', assignment.assignedHub));
    return { state: 'provisioned', ...assignment };
  } finally {
    await tpm.close().catch(() => undefined);
    await lock.release();
  }
}

/** Proves the hub takes the device's credentials within `waitMs` (a refusal ends the wait at once), then disconnects. */
async function connectOnce(tpm: TpmClient, assignment: Assignment, ca: string | undefined, clock: ServiceClock, waitMs: number): Promise<void> {
  const session = new HubSession({
    tpm, target: assignment, ca, log: new Logger({ write: () => undefined }), clockCorrectionMs: () => clock.correctionMs(),
  });
  try {
    const outcome = await retryUntilDeadline({ deadline: Date.now() + waitMs, intervalMs: 2_000 }, async () => {
      try {
        await session.connect();
        return { done: true, value: undefined };
      } catch (err) {
        if (err instanceof HubConnectError && err.kind === 'refused') throw err;
        return { done: false, value: err };
      }
    });
    if (!outcome.done) throw new AgentError(`no connection to ${assignment.assignedHub} within ${waitMs / 1000} s`, { cause: outcome.value });
  } finally {
    await session.stop();
  }
}
