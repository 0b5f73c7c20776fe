import { jsonObject, ChildMessageError, onlyKeys, show, text } from '../child/child-message.js';
import { HOST_NAME_PATTERN, ID_SCOPE_PATTERN } from '../config.js';
import { checkRegistrationId } from '../tpm/registration-id.js';
import { parseTransport } from '../tpm/transport-spec.js';
import type { DpsAssignment, ProvisionStep } from './register.js';

/**
 * What the daemon (or `iot-agent provision`) asks of the provisioning helper process, and
 * what comes back: step events, then the assignment. The request is checked as strictly as
 * the config file it came from.
 */
export interface RegisterRequest {
  /** The TPM, as a transport string (`swtpm:host=…,port=…`): the helper opens its own connection. */
  transport: string;
  registrationId: string;
  idScope: string;
  globalEndpoint: string;
  ca?: string;
}

export interface StepEvent {
  step: ProvisionStep;
  detail?: string;
}

/** A PEM bundle of a few private CAs is kilobytes; anything near this is not one. */
const MAX_CA_CHARS = 1024 * 1024;

/** The helper's side: the one request it acts on, or a ChildMessageError naming what is wrong. */
export function parseRegisterRequest(message: unknown): RegisterRequest {
  const request = jsonObject(message, 'the request');
  onlyKeys(request, ['transport', 'registrationId', 'idScope', 'globalEndpoint', 'ca'], 'the request');
  const transport = text(request.transport, 'transport', 512);
  const registrationId = text(request.registrationId, 'registrationId', 128);
  try {
    parseTransport(transport);
    checkRegistrationId(registrationId);
  } catch (err) {
    throw new ChildMessageError((err as Error).message);
  }
  const idScope = matching(request.idScope, 'idScope', ID_SCOPE_PATTERN);
  const globalEndpoint = matching(request.globalEndpoint, 'globalEndpoint', HOST_NAME_PATTERN);
  let ca: string | undefined;
  if (request.ca !== undefined) {
    ca = text(request.ca, 'ca', MAX_CA_CHARS);
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new ChildMessageError('ca is not a PEM certificate');
  }
  return { transport, registrationId, idScope, globalEndpoint, ...(ca !== undefined ? { ca } : {}) };
}

/** The parent's side: one step the helper reported. */
export function parseStepEvent(event: unknown): StepEvent {
  const record = jsonObject(event, 'the step');
  const step = text(record.step, 'step', 64) as ProvisionStep;
  return record.detail === undefined ? { step } : { step, detail: text(record.detail, 'detail', 1024) };
}

/** The parent's side: the helper's result, an assignment with a hub and a device id (and whatever else it carries). */
export function parseAssignment(result: unknown): DpsAssignment {
  const assignment = jsonObject(result, 'the assignment');
  text(assignment.assignedHub, 'assignedHub', 253);
  text(assignment.deviceId, 'deviceId', 128);
  return assignment as unknown as DpsAssignment;
}

function matching(value: unknown, key: string, pattern: RegExp): string {
  const checked = text(value, key, 253);
  if (!pattern.test(checked)) throw new ChildMessageError(`${key} ${show(value)} is not valid`);
  return checked;
}
