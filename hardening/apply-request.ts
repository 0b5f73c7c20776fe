import { AgentError, ExitCode } from '../agent/lib/errors.js';
import { readUntrustedFile } from '../agent/lib/untrusted-file.js';
import { isMapping, NOT_JSON, parseJson, PROFILE_NAME } from '../agent/lib/validate.js';
import { formatHostPort, parseHostPort, type HostPort } from './probe.js';

/**
 * What the unprivileged agent asks of the root unit iot-agent-harden-apply@NAME.service,
 * besides the profile NAME (the unit's instance): whom to confirm against, for how long,
 * and a request id to find the outcome by. It travels as a small JSON file in the agent's
 * runtime directory, at a fixed path the unit names itself; the root side reads it once
 * (readUntrustedFile) and parses it as a closed schema: unknown keys, wrong types, out of
 * range values, a profile other than the instance's, or more than MAX_REQUEST_BYTES are
 * refused. It is never read as environment, options or code.
 */
export const APPLY_REQUEST_FILE = '/run/iot-agent/harden-request.json';
export const MAX_REQUEST_BYTES = 4096;
export const MAX_CONFIRM_TARGETS = 8;
const REQUEST_ID = /^[A-Za-z0-9-]{1,64}$/;
const KEYS = ['version', 'requestId', 'profile', 'confirmTimeoutSeconds', 'confirmTargets'];

export interface ApplyRequest {
  requestId: string;
  profile: string;
  confirmTimeoutSeconds: number;
  confirmTargets: HostPort[];
}

export class ApplyRequestError extends AgentError {
  static override readonly errorName: string = 'ApplyRequestError';

  constructor(reason: string) {
    super(`apply request refused: ${reason}`, { exitCode: ExitCode.usage, hint: 'the agent writes the request; nothing was applied' });
  }
}

/** The request as the agent writes it; checked here too, so the agent never writes one the root side would refuse. */
export function encodeApplyRequest(request: ApplyRequest): string {
  const text = `${JSON.stringify({ version: 1, ...request, confirmTargets: request.confirmTargets.map(formatHostPort) })}\n`;
  parseApplyRequest(text, request.profile);
  return text;
}

/** Reads and checks the agent's request for applying `profile` (the unit's own instance name). */
export async function readApplyRequest(file: string, profile: string): Promise<ApplyRequest> {
  let text: string;
  try {
    text = await readUntrustedFile(file, MAX_REQUEST_BYTES);
  } catch (err) {
    throw new ApplyRequestError((err as Error).message);
  }
  return parseApplyRequest(text, profile);
}

/** Pure: the closed schema. */
export function parseApplyRequest(text: string, profile: string): ApplyRequest {
  const raw = parseJson(text);
  if (raw === NOT_JSON) throw new ApplyRequestError('not valid JSON');
  if (!isMapping(raw)) throw new ApplyRequestError('not a JSON object');
  const unknown = Object.keys(raw).filter((k) => !KEYS.includes(k));
  if (unknown.length) throw new ApplyRequestError(`unknown key(s) ${unknown.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}`);
  if (raw.version !== 1) throw new ApplyRequestError('version must be 1');
  if (typeof raw.requestId !== 'string' || !REQUEST_ID.test(raw.requestId)) throw new ApplyRequestError('requestId must be 1-64 letters, digits and -');
  if (typeof raw.profile !== 'string' || !PROFILE_NAME.test(raw.profile)) throw new ApplyRequestError('profile must be a profile name');
  if (raw.profile !== profile) throw new ApplyRequestError(`it is for profile ${raw.profile}, not ${JSON.stringify(profile.slice(0, 64))}`);
  const timeout = raw.confirmTimeoutSeconds;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > 3600) {
    throw new ApplyRequestError('confirmTimeoutSeconds must be whole seconds from 1 to 3600');
  }
  const targets = raw.confirmTargets;
  if (!Array.isArray(targets) || targets.length < 1 || targets.length > MAX_CONFIRM_TARGETS) {
    throw new ApplyRequestError(`confirmTargets must list 1 to ${MAX_CONFIRM_TARGETS} host:port endpoints`);
  }
  const confirmTargets = targets.map((t, i) => {
    if (typeof t !== 'string' || t.length > 300) throw new ApplyRequestError(`confirmTargets[${i}] is not a host:port`);
    try {
      return parseHostPort(t);
    } catch {
      throw new ApplyRequestError(`confirmTargets[${i}] is not a host:port`);
    }
  });
  return { requestId: raw.requestId, profile: raw.profile, confirmTimeoutSeconds: timeout, confirmTargets };
}
