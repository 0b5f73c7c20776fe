import { jsonObject, ChildMessageError, onlyKeys, text } from '../child/child-message.js';
import { HOST_NAME_PATTERN, ID_SCOPE_PATTERN } from '../config.js';
import { parseProxyUrl, type Proxy } from '../config/proxy-setting.js';
import { shown } from '../lib/validate.js';
import { isIdentityKeySlot } from '../tpm/key-slots.js';
import { checkRegistrationId } from '../config/registration-id-check.js';
import { parseTransport } from '../config/transport-spec.js';
import type { DpsAssignment, ProvisionStep } from './register.js';

/**
 * What the daemon (or `iot-agent provision`) asks of the provisioning helper process, and
 * what comes back: step and clock events, then the assignment. The request is checked as
 * strictly as the config file it came from.
 */
export interface RegisterRequest {
  /** The TPM, as a transport string (`swtpm:host=…,port=…`): the helper opens its own connection. */
  transport: string;
  registrationId: string;
  idScope: string;
  globalEndpoint: string;
  ca?: string;
  /** The persistent handle the new hub key goes to (one of the two identity key slots). */
  identityKeyHandle?: number;
  /** The HTTPS proxy DPS is reached through: its URL (credentials included) and where it was set. */
  proxy?: { url: string; source: string };
  /** Service time minus local time as the parent measured it so far: the helper signs its tokens with it. */
  clockOffsetMs?: number;
}

/** A request as the helper acts on it: the proxy parsed again by the same rules as the config's. */
export type CheckedRegisterRequest = Omit<RegisterRequest, 'proxy'> & { proxy?: Proxy };

export interface StepEvent {
  step: ProvisionStep;
  detail?: string;
}

/** A DPS answer's Date header (absent when DPS sent none) and the local wall-clock times around its request. */
export interface DateEvent {
  date?: string;
  sentAt: number;
  receivedAt: number;
}

export type ProgressEvent = StepEvent | DateEvent;

/** The provisioning helper's name in errors and logs, on both sides. */
export const PROVISIONING_PROCESS = 'the provisioning process';

/** A PEM bundle of a few private CAs is kilobytes; anything near this is not one. */
const MAX_CA_CHARS = 1024 * 1024;
const STEPS: readonly ProvisionStep[] = ['challenge', 'activated', 'assigned'];
/** Wall-clock times and offsets in ms: a board's clock may be decades off, but not beyond this (year ~2286). */
const MAX_TIME_MS = 1e13;
/** An HTTP date is 29 characters; room for the obsolete forms, not for a document. */
const MAX_DATE_CHARS = 64;

/** The helper's side: the one request it acts on, or a ChildMessageError naming what is wrong. */
export function parseRegisterRequest(message: unknown): CheckedRegisterRequest {
  const request = jsonObject(message, 'the request');
  onlyKeys(request, ['transport', 'registrationId', 'idScope', 'globalEndpoint', 'ca', 'identityKeyHandle', 'proxy', 'clockOffsetMs'], 'the request');
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
  const { identityKeyHandle, clockOffsetMs } = request;
  if (identityKeyHandle !== undefined && !(Number.isInteger(identityKeyHandle) && isIdentityKeySlot(identityKeyHandle as number))) {
    throw new ChildMessageError(`identityKeyHandle ${shown(identityKeyHandle)} is not one of the identity key slots`);
  }
  if (clockOffsetMs !== undefined) milliseconds(clockOffsetMs, 'clockOffsetMs', -MAX_TIME_MS);
  const proxy = request.proxy === undefined ? undefined : parseProxy(request.proxy);
  return {
    transport, registrationId, idScope, globalEndpoint,
    ...(ca !== undefined ? { ca } : {}),
    ...(identityKeyHandle !== undefined ? { identityKeyHandle: identityKeyHandle as number } : {}),
    ...(proxy !== undefined ? { proxy } : {}),
    ...(clockOffsetMs !== undefined ? { clockOffsetMs: clockOffsetMs as number } : {}),
  };
}

/** The parent's side: one step or one clock reading the helper reported. */
export function parseProgressEvent(event: unknown): ProgressEvent {
  const record = jsonObject(event, 'the progress event');
  if ('step' in record) {
    onlyKeys(record, ['step', 'detail'], 'the step');
    const step = text(record.step, 'step', 64) as ProvisionStep;
    if (!STEPS.includes(step)) throw new ChildMessageError(`step ${shown(step)} is not one of ${STEPS.join(', ')}`);
    return record.detail === undefined ? { step } : { step, detail: text(record.detail, 'detail', 1024) };
  }
  if ('sentAt' in record) {
    onlyKeys(record, ['date', 'sentAt', 'receivedAt'], 'the clock reading');
    const sentAt = milliseconds(record.sentAt, 'sentAt', 0);
    const receivedAt = milliseconds(record.receivedAt, 'receivedAt', 0);
    return record.date === undefined ? { sentAt, receivedAt } : { date: text(record.date, 'date', MAX_DATE_CHARS), sentAt, receivedAt };
  }
  throw new ChildMessageError(`the progress event ${shown(event)} is neither a step nor a clock reading`);
}

/** The parent's side: the helper's result, an assignment with a hub and a device id (and whatever else it carries). */
export function parseAssignment(result: unknown): DpsAssignment {
  const assignment = jsonObject(result, 'the assignment');
  text(assignment.assignedHub, 'assignedHub', 253);
  text(assignment.deviceId, 'deviceId', 128);
  return assignment as unknown as DpsAssignment;
}

function parseProxy(value: unknown): Proxy {
  const record = jsonObject(value, 'proxy');
  onlyKeys(record, ['url', 'source'], 'proxy');
  const url = text(record.url, 'proxy.url', 2048);
  const source = text(record.source, 'proxy.source', 64);
  try {
    return parseProxyUrl(url, source);
  } catch (err) {
    // The parser's messages never repeat the URL: it may hold a password.
    throw new ChildMessageError(`proxy: ${(err as Error).message}`);
  }
}

function milliseconds(value: unknown, key: string, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TIME_MS) {
    throw new ChildMessageError(`${key} ${shown(value)} is not a time in milliseconds`);
  }
  return value;
}

function matching(value: unknown, key: string, pattern: RegExp): string {
  const checked = text(value, key, 253);
  if (!pattern.test(checked)) throw new ChildMessageError(`${key} ${shown(value)} is not valid`);
  return checked;
}
