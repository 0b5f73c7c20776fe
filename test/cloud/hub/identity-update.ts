import { hubErrors } from '../errors.js';
import { isJsonObject } from './twin.js';

/**
 * The body of `PUT /devices/{id}` as azure-iothub's Registry.create and Registry.update
 * send it: the device identity, of which the hub takes the status (`enabled` or
 * `disabled`, Microsoft Learn "Understand the identity registry": a disabled device
 * "cannot access any device-facing endpoint"), its reason, and symmetric keys when given
 * (the SDK sends empty keys when the caller gave none).
 */
export interface IdentityChange {
  status?: 'enabled' | 'disabled';
  statusReason?: string;
  primaryKey?: string;
  secondaryKey?: string;
}

const BASE64_KEY = /^[A-Za-z0-9+/]{22,88}={0,2}$/;

export function parseIdentityUpdate(body: unknown, idFromPath: string): IdentityChange {
  if (!isJsonObject(body)) throw hubErrors.argumentInvalid('The device identity must be a JSON object');
  if (body.deviceId !== idFromPath) throw hubErrors.argumentInvalid(`deviceId must be ${idFromPath}, as in the path`);
  const change: IdentityChange = {};
  if (body.status !== undefined && body.status !== null) {
    if (body.status !== 'enabled' && body.status !== 'disabled') throw hubErrors.argumentInvalid('status must be "enabled" or "disabled"');
    change.status = body.status;
  }
  if (body.statusReason !== undefined && body.statusReason !== null) {
    if (typeof body.statusReason !== 'string' || body.statusReason.length > 128) throw hubErrors.argumentInvalid('statusReason must be a string of at most 128 characters');
    change.statusReason = body.statusReason;
  }
  const auth = body.authentication;
  const symmetricKey = isJsonObject(auth) && isJsonObject(auth.symmetricKey) ? auth.symmetricKey : undefined;
  for (const name of ['primaryKey', 'secondaryKey'] as const) {
    const key = symmetricKey?.[name];
    if (key === undefined || key === null || key === '') continue;
    if (typeof key !== 'string' || !BASE64_KEY.test(key)) throw hubErrors.argumentInvalid(`authentication.symmetricKey.${name} must be a base64 key of 16 to 64 bytes`);
    change[name] = key;
  }
  return change;
}
