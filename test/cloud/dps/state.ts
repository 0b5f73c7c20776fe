import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { JsonStore } from '../json-store.js';
import type { Enrollment } from './enrollment.js';

/** What DPS remembers of a device it assigned (its registration state, minus the key). */
export interface SimAssignment {
  registrationId: string;
  deviceId: string;
  assignedHub: string;
  createdDateTimeUtc: string;
  lastUpdatedDateTimeUtc: string;
  etag: string;
}

/** The service's own identity, made on first start and kept so connection strings stay valid. */
export interface ServiceIdentity {
  idScope: string;
  serviceKey: string;
}

const VERSION = 1;
/** Each of DPS's files holds `{"version": 1, "data": …}`. */
interface Versioned<T> {
  version: typeof VERSION;
  data: T;
}
const ASSIGNMENT_DELAY_MS = 200;

/**
 * Enrollments, assignments and the service identity in the state directory, one JSON file
 * each, written atomically. An enrollment is on disk before the service API answers; the
 * assignments of a burst of registrations are written together, at most ASSIGNMENT_DELAY_MS
 * after they were made (rewriting the whole file per registration made a burst quadratic),
 * and flush() writes any that are pending, as stop() does.
 */
export class DpsState {
  readonly enrollments: Map<string, Enrollment>;
  readonly assignments: Map<string, SimAssignment>;
  readonly identity: ServiceIdentity;
  private readonly enrollmentFile: JsonStore<Versioned<Record<string, Enrollment>>>;
  private readonly assignmentFile: JsonStore<Versioned<Record<string, SimAssignment>>>;
  private assignmentTimer: NodeJS.Timeout | undefined;

  constructor(dir: string, wanted: Partial<ServiceIdentity>) {
    this.enrollmentFile = versionedStore(path.join(dir, 'enrollments.json'), (v) => record<Enrollment>(v, 'enrollments'));
    this.assignmentFile = versionedStore(path.join(dir, 'assignments.json'), (v) => record<SimAssignment>(v, 'assignments'));
    this.enrollments = new Map(Object.entries(this.enrollmentFile.load()?.data ?? {}));
    this.assignments = new Map(Object.entries(this.assignmentFile.load()?.data ?? {}));
    const identityFile = versionedStore(path.join(dir, 'service.json'), (v) => record<string>(v, 'service identity') as unknown as ServiceIdentity);
    const stored = identityFile.load()?.data ?? { idScope: '', serviceKey: '' };
    this.identity = {
      idScope: wanted.idScope ?? (stored.idScope || `0ne${randomBytes(4).toString('hex').toUpperCase()}`),
      serviceKey: wanted.serviceKey ?? (stored.serviceKey || randomBytes(32).toString('base64')),
    };
    if (this.identity.idScope !== stored.idScope || this.identity.serviceKey !== stored.serviceKey) {
      identityFile.saveNow({ version: VERSION, data: this.identity });
    }
  }

  putEnrollment(enrollment: Enrollment): void {
    this.enrollments.set(enrollment.registrationId, enrollment);
    this.enrollmentFile.saveNow({ version: VERSION, data: Object.fromEntries(this.enrollments) });
  }

  deleteEnrollment(registrationId: string): void {
    this.enrollments.delete(registrationId);
    this.enrollmentFile.saveNow({ version: VERSION, data: Object.fromEntries(this.enrollments) });
  }

  putAssignment(assignment: SimAssignment): void {
    this.assignments.set(assignment.registrationId, assignment);
    this.assignmentTimer ??= setTimeout(() => this.flush(), ASSIGNMENT_DELAY_MS);
  }

  /** Writes pending assignments now. */
  flush(): void {
    if (this.assignmentTimer === undefined) return;
    clearTimeout(this.assignmentTimer);
    this.assignmentTimer = undefined;
    this.assignmentFile.saveNow({ version: VERSION, data: Object.fromEntries(this.assignments) });
  }
}

function versionedStore<T>(file: string, check: (data: unknown) => T): JsonStore<Versioned<T>> {
  return new JsonStore(file, (doc) => {
    const { version, data } = (doc ?? {}) as { version?: unknown; data?: unknown };
    if (version !== VERSION) throw new Error(`not a version ${VERSION} document`);
    return { version, data: check(data) };
  });
}

/** A JSON object of records: the shape is ours, written by this code, so only its outline is checked. */
function record<T>(value: unknown, what: string): Record<string, T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`stored ${what} are not a JSON object`);
  return value as Record<string, T>;
}
