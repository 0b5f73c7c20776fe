import { dpsErrors } from '../errors.js';
import { checkSas, parseSasOrRefuse } from '../sas.js';
import { parseEnrollment, type Enrollment } from './enrollment.js';
import { etag, type Reply } from './registrations.js';
import type { DpsState } from './state.js';

export interface ServiceCredentials {
  host: string;
  policyName: string;
  key: Buffer;
}

/**
 * DPS's service REST API for individual enrollments (api-version 2021-10-01), as the
 * azure-iot-provisioning-service SDK calls it: PUT (create or replace, If-Match for an
 * update of a known version), GET and DELETE /enrollments/{id}.
 */
export class EnrollmentService {
  constructor(
    private readonly state: DpsState,
    private readonly credentials: ServiceCredentials,
    private readonly linkedHubs: readonly string[],
  ) {}

  /** Service tokens: `sr` is the DPS host, `skn` the policy, signed with the policy's key. */
  authenticate(authorization: string | undefined): void {
    if (!authorization) throw dpsErrors.unauthorized('the service API needs a SharedAccessSignature Authorization header');
    const token = parseSasOrRefuse(authorization, (why) => dpsErrors.unauthorized(`malformed SAS token: ${why}`));
    if (token.resource.toLowerCase() !== this.credentials.host.toLowerCase()) throw dpsErrors.unauthorized(`the SAS token is for ${token.resource}, not ${this.credentials.host}`);
    if (token.keyName !== this.credentials.policyName) throw dpsErrors.unauthorized(`unknown shared access policy ${JSON.stringify(token.keyName ?? '')}`);
    const result = checkSas(token, this.credentials.key);
    if (result === 'bad-signature') throw dpsErrors.unauthorized('the SAS token signature is not valid');
    if (result === 'expired') throw dpsErrors.unauthorized('the SAS token has expired');
  }

  put(id: string, body: unknown, ifMatch: string | undefined): Reply {
    const input = parseEnrollment(body, id, this.linkedHubs);
    const existing = this.state.enrollments.get(id);
    checkEtag(existing, ifMatch, id);
    const now = new Date().toISOString();
    const enrollment: Enrollment = { ...input, etag: etag(), createdDateTimeUtc: existing?.createdDateTimeUtc ?? now, lastUpdatedDateTimeUtc: now };
    this.state.putEnrollment(enrollment);
    return { status: 200, body: enrollment };
  }

  get(id: string): Reply {
    const enrollment = this.state.enrollments.get(id);
    if (!enrollment) throw dpsErrors.notFound(`enrollment ${id} was not found`);
    return { status: 200, body: enrollment };
  }

  delete(id: string, ifMatch: string | undefined): Reply {
    const existing = this.state.enrollments.get(id);
    if (!existing) throw dpsErrors.notFound(`enrollment ${id} was not found`);
    checkEtag(existing, ifMatch, id);
    this.state.deleteEnrollment(id);
    return { status: 204, body: undefined };
  }
}

/** If-Match: "*" or the current etag (RFC 7232); anything else is 412, as is If-Match for an enrollment that does not exist. */
function checkEtag(existing: Enrollment | undefined, ifMatch: string | undefined, id: string): void {
  if (ifMatch === undefined) return;
  if (!existing) throw dpsErrors.preconditionFailed(`enrollment ${id} does not exist, so If-Match cannot match`);
  const wanted = ifMatch.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  if (wanted !== '*' && wanted !== existing.etag) throw dpsErrors.preconditionFailed(`enrollment ${id} has changed: its etag is no longer ${ifMatch}`);
}
