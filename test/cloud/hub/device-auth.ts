import { checkSas, parseSas, SasError } from '../sas.js';
import type { DeviceRecord } from './registry.js';

/**
 * IoT Hub's check of an MQTT CONNECT: username `{hub}/{deviceId}/?api-version=…`,
 * client id `{deviceId}`, password a device SAS token with `sr` = `{hub}/devices/{deviceId}`
 * signed with one of the device's keys and not expired. IoT Hub refuses every failure
 * with CONNACK 5 "not authorized" (what the C SDK logs show: "Connection Not Accepted:
 * 0x5: Not Authorized"), so this returns a reason for the hub's log and nothing finer.
 */
export type DeviceAuthResult = { ok: true; expiry: number } | { ok: false; reason: string };

export function authenticateDevice(
  hostName: string,
  clientId: string,
  username: string | undefined,
  password: Buffer | undefined,
  lookup: (deviceId: string) => DeviceRecord | undefined,
  nowSeconds = Math.floor(Date.now() / 1000),
): DeviceAuthResult {
  if (!username || !password) return { ok: false, reason: 'no username or password' };
  const userDevice = deviceIdFromUsername(hostName, username);
  if (userDevice === undefined) return { ok: false, reason: `username is not ${hostName}/{deviceId}/?api-version=…` };
  if (userDevice !== clientId) return { ok: false, reason: `client id ${clientId} does not match the username's device ${userDevice}` };
  const device = lookup(clientId);
  if (!device) return { ok: false, reason: `device ${clientId} is not registered` };
  if (device.status !== 'enabled') return { ok: false, reason: `device ${clientId} is disabled` };
  let token;
  try {
    token = parseSas(password.toString('utf8'));
  } catch (err) {
    if (err instanceof SasError) return { ok: false, reason: `password is not a SAS token: ${err.message}` };
    throw err;
  }
  const expected = `${hostName}/devices/${clientId}`;
  if (token.resource.toLowerCase() !== expected.toLowerCase()) {
    return { ok: false, reason: `token is for ${token.resource}, not ${expected}` };
  }
  const results = [device.primaryKey, device.secondaryKey].map((key) => checkSas(token, Buffer.from(key, 'base64'), nowSeconds));
  if (results.includes('ok')) return { ok: true, expiry: token.expiry };
  if (results.includes('expired')) return { ok: false, reason: 'token expired' };
  return { ok: false, reason: 'token signature does not match the device key' };
}

/** `{hub}/{deviceId}/?api-version=…` (the host compared without case, like DNS) → deviceId. */
export function deviceIdFromUsername(hostName: string, username: string): string | undefined {
  const q = username.indexOf('?');
  const pathPart = q < 0 ? username : username.slice(0, q);
  const parts = pathPart.split('/');
  // host/deviceId/ → ['host', 'deviceId', '']; module identities (host/device/module/) are not served.
  if (parts.length !== 3 || parts[2] !== '') return undefined;
  const [host, deviceId] = parts as [string, string, string];
  if (host.toLowerCase() !== hostName.toLowerCase() || deviceId === '') return undefined;
  if (q < 0 || !/(^|&)api-version=[^&]+/.test(username.slice(q + 1))) return undefined;
  return deviceId;
}
