import { HOST_NAME_PATTERN, ID_SCOPE_PATTERN } from '../config.js';
import { AgentError, ExitCode } from '../errors.js';
import type { SerializedError } from '../serialized-error.js';
import { checkRegistrationId } from '../tpm/registration-id.js';
import { parseTransport } from '../tpm/transport-spec.js';
import type { DpsAssignment, ProvisionStep } from './register.js';

/**
 * The messages between the daemon (or `iot-agent provision`) and the short-lived process
 * that registers with DPS, over Node's IPC channel as JSON. The child takes exactly one
 * request; everything in it is checked as strictly as the config file it came from.
 */
export interface RegisterRequest {
  kind: 'register';
  /** The TPM, as a transport string (`swtpm:host=…,port=…`): the child opens its own connection. */
  transport: string;
  registrationId: string;
  idScope: string;
  globalEndpoint: string;
  ca?: string;
}

export type ChildEvent =
  | { kind: 'step'; step: ProvisionStep; detail?: string }
  | { kind: 'assigned'; assignment: DpsAssignment }
  | { kind: 'failed'; error: SerializedError };

/** A PEM bundle of a few private CAs is kilobytes; anything near this is not one. */
const MAX_CA_CHARS = 1024 * 1024;
const REQUEST_KEYS = ['kind', 'transport', 'registrationId', 'idScope', 'globalEndpoint', 'ca'];

export class ChildMessageError extends AgentError {
  constructor(message: string) {
    super(`provisioning process: ${message}`, { exitCode: ExitCode.usage });
  }
}

/** The child's side: the one request it acts on, or a ChildMessageError naming what is wrong. */
export function parseRegisterRequest(message: unknown): RegisterRequest {
  const request = record(message, 'the request');
  const unknown = Object.keys(request).filter((key) => !REQUEST_KEYS.includes(key));
  if (unknown.length) throw new ChildMessageError(`unknown field ${JSON.stringify(unknown[0])} in the request`);
  if (request.kind !== 'register') throw new ChildMessageError(`kind ${show(request.kind)} is not "register"`);
  const transport = text(request.transport, 'transport', 512);
  try {
    parseTransport(transport);
  } catch (err) {
    throw new ChildMessageError((err as Error).message);
  }
  const registrationId = text(request.registrationId, 'registrationId', 128);
  try {
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
  return { kind: 'register', transport, registrationId, idScope, globalEndpoint, ...(ca !== undefined ? { ca } : {}) };
}

/** The parent's side: one event from the child, or a ChildMessageError. */
export function parseChildEvent(message: unknown): ChildEvent {
  const event = record(message, 'the event');
  switch (event.kind) {
    case 'step': {
      const step = text(event.step, 'step', 64) as ProvisionStep;
      return event.detail === undefined ? { kind: 'step', step } : { kind: 'step', step, detail: text(event.detail, 'detail', 1024) };
    }
    case 'assigned': {
      const assignment = record(event.assignment, 'the assignment');
      text(assignment.assignedHub, 'assignedHub', 253);
      text(assignment.deviceId, 'deviceId', 128);
      return { kind: 'assigned', assignment: assignment as unknown as DpsAssignment };
    }
    case 'failed':
      return { kind: 'failed', error: record(event.error, 'the error') as unknown as SerializedError };
    default:
      throw new ChildMessageError(`unknown event kind ${show(event.kind)}`);
  }
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ChildMessageError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function text(value: unknown, key: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0) throw new ChildMessageError(`${key} ${show(value)} is not a non-empty string`);
  if (value.length > maxLength) throw new ChildMessageError(`${key} is longer than ${maxLength} characters`);
  return value;
}

function matching(value: unknown, key: string, pattern: RegExp): string {
  const checked = text(value, key, 253);
  if (!pattern.test(checked)) throw new ChildMessageError(`${key} ${show(value)} is not valid`);
  return checked;
}

function show(value: unknown): string {
  const shown = JSON.stringify(value) ?? String(value);
  return shown.length > 60 ? `${shown.slice(0, 57)}...` : shown;
}
