import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { LinkedHub } from '../contracts.js';
import { dpsErrors } from '../errors.js';
import { checkSas, parseSasOrRefuse } from '../sas.js';
import { ActivationBlobError, buildActivationBlob } from './activation-blob.js';
import { chooseHub } from './allocation.js';
import type { AllocationPolicy, Enrollment } from './enrollment.js';
import type { Faults } from './faults.js';
import type { TpmRegistrationRequest } from './registration-request.js';
import type { DpsState } from './state.js';

export interface RegistrationCounters {
  challenges: number;
  registrations: number;
  refusals: number;
  failedAssignments: number;
  /** Registrations of a disabled enrollment, answered with status "disabled". */
  disabledRegistrations: number;
  /** Operation-status polls answered 429 (more than 5 in 10 s for one registration id). */
  throttledPolls: number;
}

/**
 * What DPS answers for an enrollment that is disabled. The REST reference lists "disabled"
 * among a registration's statuses, but what DPS sends for a TPM device whose individual
 * enrollment is disabled is not documented: `status` completes the attestation and ends
 * the registration with status "disabled" (HTTP 200); `unauthorized` refuses the first
 * request with 401, as for an unknown device.
 */
export type DisabledEnrollmentAnswer = 'status' | 'unauthorized';

export interface RegistrationOptions {
  idScope: string;
  linkedHubs: readonly LinkedHub[];
  allocation: AllocationPolicy;
  /** The retry-after DPS sends with `assigning` (whole seconds; DPS sends small integers). */
  retryAfterSeconds: number;
  disabledEnrollment: DisabledEnrollmentAnswer;
  faults: Faults;
}

/** A device reply: the status, its JSON body and extra headers. */
export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

interface Operation {
  operationId: string;
  registrationId: string;
  /** The challenge key the device signs its SAS tokens with, also for polling. */
  sasKey: Buffer;
  status: 'assigning' | 'assigned' | 'failed' | 'disabled';
  registrationState?: Record<string, unknown>;
}

/** Operations kept for polling; the oldest are forgotten beyond this, as a bound on memory. */
const MAX_OPERATIONS = 10_000;
/** DPS's rate limit on polling (Microsoft Learn, DPS quotas and limits: "Device polling operation 5/10 sec/device"). */
export const POLLS_PER_WINDOW = 5;
export const POLL_WINDOW_MS = 10_000;

/**
 * The device side of DPS with TPM attestation: a 401 challenge carrying a key for the
 * enrolled EK, then a SAS token signed with that key, then an asynchronous assignment to
 * a linked hub with a fresh key that the final activation blob carries.
 */
export class Registrations {
  readonly counters: RegistrationCounters = { challenges: 0, registrations: 0, refusals: 0, failedAssignments: 0, disabledRegistrations: 0, throttledPolls: 0 };
  /** Recent polls per registration id, for the polling rate limit. */
  private readonly polls = new Map<string, number[]>();
  /** The latest challenge key per registration id: only it can sign the next request. */
  private readonly challenges = new Map<string, { key: Buffer; storageRootKey: Buffer }>();
  private readonly operations = new Map<string, Operation>();

  constructor(private readonly state: DpsState, private readonly options: RegistrationOptions) {}

  register(request: TpmRegistrationRequest, authorization: string | undefined): Reply {
    const enrollment = this.enrollmentFor(request);
    if (authorization === undefined) return this.challenge(enrollment, request);
    const challenge = this.challenges.get(request.registrationId);
    const key = this.verify(authorization, request.registrationId, challenge?.key);
    if (!challenge!.storageRootKey.equals(request.storageRootKey)) throw dpsErrors.unauthorized('the storage root key differs from the one the challenge was made for');
    this.challenges.delete(request.registrationId);
    const operation: Operation = { operationId: `4.${randomBytes(8).toString('hex')}.${randomUUID()}`, registrationId: request.registrationId, sasKey: key, status: 'assigning' };
    this.remember(operation);
    if (enrollment.provisioningStatus === 'disabled') return this.disabled(operation);
    const delay = this.options.faults.assignmentDelayMs;
    if (delay > 0) setTimeout(() => void this.assign(operation, enrollment, request.storageRootKey), delay).unref();
    else void this.assign(operation, enrollment, request.storageRootKey);
    return this.assigning(operation, 202);
  }

  operationStatus(registrationId: string, operationId: string, authorization: string | undefined): Reply {
    const operation = this.operations.get(operationId);
    if (!operation || operation.registrationId !== registrationId) {
      // Authenticate first where possible, so the reply does not tell strangers which operations exist.
      if (authorization === undefined) throw dpsErrors.unauthorized('an operation status request needs the registration SAS token');
      throw dpsErrors.notFound(`operation ${operationId} was not found`);
    }
    if (authorization === undefined) throw dpsErrors.unauthorized('an operation status request needs the registration SAS token');
    this.verify(authorization, registrationId, operation.sasKey);
    this.countPoll(registrationId);
    if (operation.status === 'assigning') return this.assigning(operation, 202);
    return { status: 200, body: { operationId, status: operation.status, registrationState: operation.registrationState } };
  }

  private enrollmentFor(request: TpmRegistrationRequest): Enrollment {
    const enrollment = this.state.enrollments.get(request.registrationId);
    if (!enrollment) throw dpsErrors.unauthorized(`no enrollment for registration id ${request.registrationId}`);
    const enrolledEk = Buffer.from(enrollment.attestation.tpm.endorsementKey, 'base64');
    if (enrolledEk.length !== request.endorsementKey.length || !timingSafeEqual(enrolledEk, request.endorsementKey)) {
      throw dpsErrors.unauthorized('the endorsement key does not match the enrollment');
    }
    if (enrollment.provisioningStatus === 'disabled' && this.options.disabledEnrollment === 'unauthorized') throw dpsErrors.unauthorized('the enrollment is disabled');
    return enrollment;
  }

  private challenge(enrollment: Enrollment, request: TpmRegistrationRequest): Reply {
    const key = randomBytes(32);
    // Built for the enrolled EK, not the one the request carries: only the enrolled TPM can answer.
    const blob = this.blobFor(Buffer.from(enrollment.attestation.tpm.endorsementKey, 'base64'), request.storageRootKey, key);
    this.challenges.set(request.registrationId, { key, storageRootKey: request.storageRootKey });
    this.counters.challenges++;
    return { status: 401, body: { message: 'Unauthorized', authenticationKey: blob.toString('base64'), keyName: 'registration' } };
  }

  /** Checks a registration SAS token: resource, key name, signature with the challenge key, expiry. */
  private verify(authorization: string, registrationId: string, key: Buffer | undefined): Buffer {
    const token = parseSasOrRefuse(authorization, (why) => dpsErrors.unauthorized(`malformed SAS token: ${why}`));
    const resource = `${this.options.idScope}/registrations/${registrationId}`;
    if (token.resource !== resource) throw dpsErrors.unauthorized(`the SAS token is for ${token.resource}, not ${resource}`);
    if (token.keyName !== 'registration') throw dpsErrors.unauthorized('the SAS token must be signed with the key named "registration"');
    if (!key) throw dpsErrors.unauthorized('no challenge is outstanding for this registration id: start again without Authorization');
    const result = checkSas(token, key);
    if (result === 'bad-signature') throw dpsErrors.unauthorized('the SAS token signature is not valid');
    if (result === 'expired') throw dpsErrors.unauthorized('the SAS token has expired');
    return key;
  }

  private async assign(operation: Operation, enrollment: Enrollment, storageRootKey: Buffer): Promise<void> {
    const now = new Date().toISOString();
    const deviceId = enrollment.deviceId ?? enrollment.registrationId;
    try {
      const failure = this.options.faults.takeAssignmentFailure();
      if (failure) throw Object.assign(new Error(failure.errorMessage), { errorCode: failure.errorCode });
      const hostName = chooseHub(enrollment, this.options.linkedHubs.map((h) => h.hostName), this.options.allocation);
      const hub = this.options.linkedHubs.find((h) => h.hostName === hostName)!;
      const primaryKey = randomBytes(32);
      const blob = this.blobFor(Buffer.from(enrollment.attestation.tpm.endorsementKey, 'base64'), storageRootKey, primaryKey);
      await hub.registerDevice({ deviceId, registrationId: enrollment.registrationId, primaryKey, ...(enrollment.initialTwin ? { initialTwin: enrollment.initialTwin } : {}) });
      const previous = this.state.assignments.get(enrollment.registrationId);
      const assignment = {
        registrationId: enrollment.registrationId, deviceId, assignedHub: hostName,
        createdDateTimeUtc: previous?.createdDateTimeUtc ?? now, lastUpdatedDateTimeUtc: now, etag: etag(),
      };
      this.state.putAssignment(assignment);
      operation.status = 'assigned';
      operation.registrationState = {
        ...assignment, status: 'assigned',
        // DPS's default reprovisioning policy migrates the device's data when its hub changes.
        substatus: previous && previous.assignedHub !== hostName ? 'deviceDataMigrated' : 'initialAssignment',
        tpm: { authenticationKey: blob.toString('base64') },
      };
      this.counters.registrations++;
    } catch (err) {
      const errorCode = (err as { errorCode?: number }).errorCode;
      operation.status = 'failed';
      operation.registrationState = {
        registrationId: enrollment.registrationId, createdDateTimeUtc: now, lastUpdatedDateTimeUtc: now, status: 'failed',
        errorCode: errorCode ?? 500000, errorMessage: errorCode ? (err as Error).message : `assignment failed: ${(err as Error).message}`, etag: etag(),
      };
      this.counters.failedAssignments++;
    }
  }

  private blobFor(endorsementKey: Buffer, storageRootKey: Buffer, key: Buffer): Buffer {
    try {
      return buildActivationBlob(endorsementKey, storageRootKey, key);
    } catch (err) {
      if (err instanceof ActivationBlobError) throw dpsErrors.badRequest(err.message);
      throw err;
    }
  }

  /** A disabled enrollment: attested, then ended with status "disabled" and no hub. */
  private disabled(operation: Operation): Reply {
    const now = new Date().toISOString();
    operation.status = 'disabled';
    operation.registrationState = { registrationId: operation.registrationId, createdDateTimeUtc: now, lastUpdatedDateTimeUtc: now, status: 'disabled', etag: etag() };
    this.counters.disabledRegistrations++;
    return { status: 200, body: { operationId: operation.operationId, status: operation.status, registrationState: operation.registrationState } };
  }

  /** Counts a poll; the sixth within ten seconds is throttled, with a Retry-After until a slot frees. */
  private countPoll(registrationId: string): void {
    const now = Date.now();
    const recent = (this.polls.get(registrationId) ?? []).filter((at) => now - at < POLL_WINDOW_MS);
    if (recent.length >= POLLS_PER_WINDOW) {
      this.polls.set(registrationId, recent);
      this.counters.throttledPolls++;
      throw dpsErrors.throttled(Math.max(1, Math.ceil((recent[0]! + POLL_WINDOW_MS - now) / 1000)));
    }
    recent.push(now);
    this.polls.set(registrationId, recent);
    if (this.polls.size > MAX_OPERATIONS) this.polls.delete(this.polls.keys().next().value!);
  }

  private assigning(operation: Operation, status: number): Reply {
    return {
      status,
      body: { operationId: operation.operationId, status: 'assigning' },
      headers: { 'retry-after': String(this.options.retryAfterSeconds) },
    };
  }

  private remember(operation: Operation): void {
    this.operations.set(operation.operationId, operation);
    if (this.operations.size > MAX_OPERATIONS) this.operations.delete(this.operations.keys().next().value!);
  }
}

/** DPS etags are base64 of a quoted GUID. */
export function etag(): string {
  return Buffer.from(`"${randomUUID()}"`).toString('base64');
}
