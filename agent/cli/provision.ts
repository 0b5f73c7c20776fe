import { readFile } from 'node:fs/promises';
import { loadConfig, requireIdScope, type AgentConfig } from '../config.js';
import { AgentError, describeError } from '../errors.js';
import { DaemonAbsentError, requestDaemon } from '../daemon/control-socket.js';
import { TpmLock } from '../daemon/tpm-lock.js';
import { HubSession } from '../hub/session.js';
import { Logger } from '../log/logger.js';
import { decideAtStartup } from '../provisioning/decide.js';
import { registerInChild } from '../provisioning/child-process.js';
import { readAssignment, writeAssignment, type Assignment } from '../state/assignment-store.js';
import { ensureIdentity } from '../tpm/identity.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { parseTransport } from '../tpm/transport-spec.js';

export interface ProvisionOptions {
  config?: string;
  force?: boolean;
  json?: boolean;
}

interface Step {
  step: string;
  message: string;
}

const CONNECT_TIMEOUT_MS = 60_000;

/**
 * `iot-agent provision`: register with DPS now. Through the daemon when it runs (it owns
 * the TPM), directly otherwise. Each step is shown as it happens; the end is one summary
 * line, or one error line naming the step that failed.
 */
export async function provision(options: ProvisionOptions): Promise<number> {
  const config = await loadConfig(options.config);
  const idScope = requireIdScope(config, options.config);
  const steps: Step[] = [];
  let current = 'tpm';
  const show = (step: string, message: string) => {
    current = nextStep(step);
    steps.push({ step, message });
    if (!options.json) process.stdout.write(`  ${message}\n`);
  };
  try {
    let result: Record<string, unknown>;
    try {
      result = await viaDaemon(config, show);
    } catch (err) {
      if (!(err instanceof DaemonAbsentError)) throw err;
      result = await directly(config, idScope, options.force === true, show);
    }
    const summary = `provisioned: ${String(result.deviceId)} on ${String(result.assignedHub)} (registration id ${String(result.registrationId)})`;
    if (options.json) process.stdout.write(`${JSON.stringify({ ...result, steps })}\n`);
    else process.stdout.write(`${summary}\n`);
    return 0;
  } catch (err) {
    throw new AgentError(`provisioning failed at step "${current}"`, { cause: err, hint: err instanceof AgentError ? err.hint : undefined });
  }
}

/** Which step comes after `done`, to name the one a failure happened in. */
function nextStep(done: string): string {
  const order = ['tpm', 'challenge', 'activated', 'assigned', 'connected'];
  return order[Math.min(order.indexOf(done) + 1, order.length - 1)] ?? done;
}

async function viaDaemon(config: AgentConfig, show: (step: string, message: string) => void): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> | undefined;
  for await (const line of requestDaemon(config.runtimeDir, { op: 'provision', force: true })) {
    if (line.event === 'step') show(String(line.step), String(line.message));
    else if (line.event === 'error') throw new AgentError(String(line.message));
    else if (line.event === 'done') last = line;
  }
  if (!last) throw new AgentError('the daemon ended the request without a result');
  delete last.event;
  return last;
}

async function directly(config: AgentConfig, idScope: string, force: boolean,
  show: (step: string, message: string) => void): Promise<Record<string, unknown>> {
  const lock = await TpmLock.acquire(config.runtimeDir, 'iot-agent provision');
  const tpm = new TpmClient(openTransport(parseTransport(config.tpm.transport)));
  try {
    const identity = await ensureIdentity(tpm, { registrationId: config.provisioning.registrationId });
    show('tpm', `TPM ready, registration id ${identity.registrationId}`);
    const ca = config.tls.extraCaFile ? await readFile(config.tls.extraCaFile, 'utf8') : undefined;
    const stored = await readAssignment(config.stateDir);
    const decision = decideAtStartup(config, idScope, identity.registrationId, stored);
    let assignment: Assignment;
    if (!force && decision.action === 'useCached') {
      assignment = decision.assignment;
      show('assigned', `already assigned to ${assignment.assignedHub} as ${assignment.deviceId} (use --force to register again)`);
    } else {
      const result = await registerInChild({
        tpm, registrationId: identity.registrationId, idScope, globalEndpoint: config.provisioning.globalEndpoint, ca,
        onStep: (step, detail) => show(step, step === 'challenge' ? 'DPS challenge received'
          : step === 'activated' ? 'key activated in the TPM' : `assigned to ${detail}`),
      });
      assignment = {
        ...result, registrationId: identity.registrationId, idScope,
        globalEndpoint: config.provisioning.globalEndpoint, assignedAt: new Date().toISOString(),
      };
      await writeAssignment(config.stateDir, assignment);
    }
    await connectOnce(tpm, assignment, ca);
    show('connected', `connected to ${assignment.assignedHub}`);
    return { state: 'provisioned', ...assignment };
  } finally {
    await tpm.close().catch(() => undefined);
    await lock.release();
  }
}

/** Proves the hub takes the device's credentials, then disconnects. */
async function connectOnce(tpm: TpmClient, assignment: Assignment, ca: string | undefined): Promise<void> {
  const session = new HubSession({
    tpm, registrationId: assignment.registrationId, assignedHub: assignment.assignedHub, deviceId: assignment.deviceId, ca,
    log: new Logger({ level: 'error', write: () => undefined }),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      // The session retries on its own; give up after the deadline with the last reason.
      let lastError: Error | undefined;
      const timer = setTimeout(() => reject(new AgentError(`no connection to ${assignment.assignedHub} within ${CONNECT_TIMEOUT_MS / 1000} s`,
        { cause: lastError })), CONNECT_TIMEOUT_MS);
      session.on('connected', () => { clearTimeout(timer); resolve(); });
      session.on('rejected', (err) => { clearTimeout(timer); reject(new AgentError(`the hub refused the device: ${describeError(err)}`)); });
      session.on('disconnected', (err) => { lastError = err; });
      session.start();
    });
  } finally {
    await session.stop();
  }
}
