import type { HubDeviceRegistration } from '../contracts.js';
import { dpsErrors } from '../errors.js';
import { asObject } from '../http.js';
import { parseRsaPublic } from '../../../agent/tpm/wire/tpm-public.js';

export type AllocationPolicy = 'static' | 'hashed';

/** An individual enrollment with TPM attestation, in the shape of DPS's service API (2021-10-01). */
export interface Enrollment {
  registrationId: string;
  deviceId?: string;
  attestation: { type: 'tpm'; tpm: { endorsementKey: string; storageRootKey?: string } };
  provisioningStatus: 'enabled' | 'disabled';
  initialTwin?: HubDeviceRegistration['initialTwin'];
  allocationPolicy?: AllocationPolicy;
  iotHubs?: string[];
  /** Deprecated by DPS in favour of iotHubs, still honoured for static allocation. */
  iotHubHostName?: string;
  etag: string;
  createdDateTimeUtc: string;
  lastUpdatedDateTimeUtc: string;
}

export type EnrollmentInput = Omit<Enrollment, 'etag' | 'createdDateTimeUtc' | 'lastUpdatedDateTimeUtc'>;

/** What a caller gives to create an enrollment: the service API's body, enabled unless it says otherwise. */
export type EnrollmentRequest = Omit<EnrollmentInput, 'provisioningStatus'> & { provisioningStatus?: Enrollment['provisioningStatus'] };

/**
 * DPS's rule for registration ids (REST reference, Register Device: "alphanumeric ... plus
 * certain special characters ... No special characters allowed at start or end"): 1–128 of
 * a-z 0-9 - . _ :, starting and ending with a letter or digit.
 */
const REGISTRATION_ID = /^[a-z0-9]([a-z0-9\-._:]{0,126}[a-z0-9])?$/;
const DEVICE_ID = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;

export function isRegistrationId(value: string): boolean {
  return REGISTRATION_ID.test(value);
}

/**
 * Validates a PUT /enrollments/{id} body as DPS does: 400 for anything malformed, including
 * an EK that is not an RSA-2048 TPM2B_PUBLIC and hubs that are not linked to this DPS.
 */
export function parseEnrollment(body: unknown, idFromPath: string, linkedHubs: readonly string[]): EnrollmentInput {
  const o = asObject(body);
  if (!o) throw dpsErrors.badRequest('the enrollment must be a JSON object');
  const registrationId = o.registrationId;
  if (typeof registrationId !== 'string' || !isRegistrationId(registrationId)) throw dpsErrors.badRequest('registrationId is missing or not a valid registration id');
  if (registrationId !== idFromPath) throw dpsErrors.badRequest(`registrationId ${registrationId} does not match the URL's ${idFromPath}`);

  const attestation = asObject(o.attestation);
  if (!attestation || typeof attestation.type !== 'string') throw dpsErrors.badRequest('attestation.type is required');
  if (attestation.type !== 'tpm') throw dpsErrors.badRequest(`attestation type ${JSON.stringify(attestation.type)} is not supported here; only "tpm"`);
  const tpm = asObject(attestation.tpm);
  const endorsementKey = tpm?.endorsementKey;
  if (typeof endorsementKey !== 'string') throw dpsErrors.badRequest('attestation.tpm.endorsementKey is required');
  checkPublicKey(endorsementKey, 'attestation.tpm.endorsementKey');
  const storageRootKey = tpm?.storageRootKey;
  if (storageRootKey !== undefined && storageRootKey !== null && typeof storageRootKey !== 'string') throw dpsErrors.badRequest('attestation.tpm.storageRootKey must be a string');

  const enrollment: EnrollmentInput = {
    registrationId,
    attestation: { type: 'tpm', tpm: { endorsementKey, ...(typeof storageRootKey === 'string' ? { storageRootKey } : {}) } },
    provisioningStatus: 'enabled',
  };
  if (o.deviceId !== undefined && o.deviceId !== null) {
    if (typeof o.deviceId !== 'string' || !DEVICE_ID.test(o.deviceId)) throw dpsErrors.badRequest('deviceId is not a valid device id');
    enrollment.deviceId = o.deviceId;
  }
  if (o.provisioningStatus !== undefined && o.provisioningStatus !== null) {
    if (o.provisioningStatus !== 'enabled' && o.provisioningStatus !== 'disabled') throw dpsErrors.badRequest('provisioningStatus must be "enabled" or "disabled"');
    enrollment.provisioningStatus = o.provisioningStatus;
  }
  if (o.initialTwin !== undefined && o.initialTwin !== null) enrollment.initialTwin = parseInitialTwin(o.initialTwin);
  if (o.allocationPolicy !== undefined && o.allocationPolicy !== null) {
    if (o.allocationPolicy !== 'static' && o.allocationPolicy !== 'hashed') throw dpsErrors.badRequest(`allocationPolicy ${JSON.stringify(o.allocationPolicy)} is not supported here; use "static" or "hashed"`);
    enrollment.allocationPolicy = o.allocationPolicy;
  }
  if (o.iotHubs !== undefined && o.iotHubs !== null) {
    if (!Array.isArray(o.iotHubs) || !o.iotHubs.every((h) => typeof h === 'string')) throw dpsErrors.badRequest('iotHubs must be a list of host names');
    enrollment.iotHubs = o.iotHubs;
  }
  if (o.iotHubHostName !== undefined && o.iotHubHostName !== null) {
    if (typeof o.iotHubHostName !== 'string') throw dpsErrors.badRequest('iotHubHostName must be a host name');
    enrollment.iotHubHostName = o.iotHubHostName;
  }
  for (const hub of [...(enrollment.iotHubs ?? []), ...(enrollment.iotHubHostName ? [enrollment.iotHubHostName] : [])]) {
    if (!linkedHubs.includes(hub)) throw dpsErrors.badRequest(`IoT hub ${hub} is not linked to this provisioning service`);
  }
  if (enrollment.allocationPolicy === 'static' && (enrollment.iotHubs?.length ?? 0) > 1) throw dpsErrors.badRequest('static allocation takes exactly one IoT hub');
  return enrollment;
}

function checkPublicKey(value: string, field: string): void {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) throw dpsErrors.badRequest(`${field} is not base64`);
  try {
    parseRsaPublic(Buffer.from(value, 'base64'), field);
  } catch (err) {
    throw dpsErrors.badRequest(`${field} is not a usable TPM2B_PUBLIC: ${(err as Error).message}`);
  }
}

function parseInitialTwin(value: unknown): NonNullable<Enrollment['initialTwin']> {
  const twin = asObject(value);
  if (!twin) throw dpsErrors.badRequest('initialTwin must be an object');
  const out: NonNullable<Enrollment['initialTwin']> = {};
  if (twin.tags !== undefined && twin.tags !== null) {
    const tags = asObject(twin.tags);
    if (!tags) throw dpsErrors.badRequest('initialTwin.tags must be an object');
    out.tags = tags;
  }
  const properties = twin.properties === undefined || twin.properties === null ? undefined : asObject(twin.properties);
  if (twin.properties !== undefined && twin.properties !== null && !properties) throw dpsErrors.badRequest('initialTwin.properties must be an object');
  if (properties?.desired !== undefined && properties.desired !== null) {
    const desired = asObject(properties.desired);
    if (!desired) throw dpsErrors.badRequest('initialTwin.properties.desired must be an object');
    out.properties = { desired };
  }
  return out;
}
