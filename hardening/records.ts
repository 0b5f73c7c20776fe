import { chmod, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../agent/lib/errors.js';
import { writeFileAtomic } from '../agent/lib/atomic-file.js';
import { isMapping, NOT_JSON, parseJson } from '../agent/lib/validate.js';
import type { Backend } from './backend.js';
import { profileHash, type Profile } from './profile.js';
import type { Family } from './render-firewall.js';
import type { ApplyReport, VerifyReport } from './reports.js';

/**
 * The hardening engine's records, one JSON file each in root's state directory, behind
 * typed accessors. Each read checks the record's shape (a record the SD card half-wrote
 * is "corrupt", never half-trusted); each write is atomic. Modes: 0644 where the
 * unprivileged agent reads and reports the record, 0600 where it holds other software's
 * firewall rules (the snapshot).
 */

/**
 * Where the records live, under the root the engine works on: root's own directory (the
 * hardening units' StateDirectory=), never the agent's /var/lib/iot-agent.
 */
export const DEFAULT_STATE_DIR = 'var/lib/iot-agent-hardening';

/** What was applied last, with the firewall as the backend printed it right after loading. */
export interface AppliedRecord {
  profile: Profile;
  hash: string;
  origin: string;
  appliedAt: string;
  backend: Backend;
  /** Proven not to cut the device off its endpoints (confirmed transaction, or by the guard). */
  confirmed: boolean;
  firewall: Record<Family, string[] | null>;
  /**
   * What `firewall` was read back from: the rendered rules and the save tool's binary. A
   * later apply of the same rules with the same binary reuses the lines instead of
   * reading the table back again (the boot path re-applies the same profile every boot).
   */
  readback?: Record<Family, string | null>;
  /** The boot it was applied in: at the next boot the kernel starts with empty tables. */
  bootId?: string;
}

export interface KnownGoodRecord {
  profile: Profile;
  hash: string;
  origin: string;
  confirmedAt: string;
}

export interface Snapshot {
  takenAt: string;
  backend: Backend;
  /** `iptables-save -t filter` / `ip6tables-save -t filter` before the change (null: unavailable). */
  firewall: Record<Family, string | null>;
  sysctls: Record<string, string | null>;
  files: Record<string, string | null>;
  sysfs: Record<string, string | null>;
  applied: AppliedRecord | null;
  /** The snapshot this one replaced: rollback walks back one profile at a time. */
  older?: Snapshot | null;
}

/** A confirmed change in progress: at boot, its presence means the change was interrupted. */
export interface PendingRecord {
  hash: string;
  startedAt: string;
  timeoutSeconds: number;
}

/** Who ran a verify that was recorded: the boot unit, the guard, or an apply (CLI or harden-apply@). */
export type VerifiedBy = 'boot' | 'guard' | 'apply';

/** The drift found by the last root run, for readers that cannot read the firewall (the agent). */
export interface VerifiedRecord extends VerifyReport {
  checkedAt: string;
  by: VerifiedBy;
}

/** The outcome of the last non-boot apply, tagged with the request it answered. */
export interface ApplyOutcomeRecord {
  requestId: string | null;
  invocationId: string | null;
  profile: string;
  finishedAt: string;
  report?: ApplyReport;
  error?: string;
}

/**
 * The value each sysctl and sysfs key had before the agent first changed it. A key a later
 * profile no longer manages goes back to this value, and verify expects it there.
 */
export interface OriginalsRecord {
  sysctls: Record<string, string | null>;
  sysfs: Record<string, string | null>;
}

/** How the last boot's apply went; `fail-closed` is reported to the twin once the agent is connected. */
export interface BootRecord {
  bootId: string;
  at: string;
  outcome: 'applied' | 'fail-closed';
  profile: string | null;
  error?: string;
}

export class CorruptRecordError extends AgentError {
  static override readonly errorName: string = 'CorruptRecordError';

  constructor(readonly file: string, reason: string) {
    super(`hardening record ${file} is corrupt: ${reason}`, { hint: 'apply a profile again (the record is rewritten), or remove it' });
  }
}

/** Why a parsed value is not a T (undefined: it is one). */
type Check = (value: Record<string, unknown>) => string | undefined;

export class RecordFile<T> {
  constructor(readonly file: string, readonly mode: number, private readonly check: Check) {}

  /** The record, null when absent; a CorruptRecordError when it cannot be trusted. */
  async read(): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new AgentError(`cannot read hardening record ${this.file}`, { cause: err });
    }
    const value = parseJson(text);
    if (value === NOT_JSON) throw new CorruptRecordError(this.file, text.trim() === '' ? 'empty' : 'not valid JSON (truncated or garbage)');
    if (!isMapping(value)) throw new CorruptRecordError(this.file, 'not a JSON object');
    const problem = this.check(value);
    if (problem) throw new CorruptRecordError(this.file, problem);
    return value as T;
  }

  /** History is history: a corrupt record reads as absent, and `notes` says so. */
  async readOrNote(notes: string[]): Promise<T | null> {
    try {
      return await this.read();
    } catch (err) {
      if (!(err instanceof CorruptRecordError)) throw err;
      notes.push(`${err.message}: ignored`);
      return null;
    }
  }

  /** Present but not trustworthy (only a corrupt record is); absent and valid ones are not. */
  async isCorrupt(): Promise<boolean> {
    return this.read().then(() => false, (err: unknown) => err instanceof CorruptRecordError);
  }

  async write(value: T): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(value, null, 2)}\n`, this.mode);
  }

  async remove(): Promise<void> {
    await rm(this.file, { force: true });
  }
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const HASH = /^[0-9a-f]{64}$/;

function checkProfile(r: Record<string, unknown>): string | undefined {
  if (!isObject(r.profile) || !isString(r.profile.name)) return 'no profile';
  if (!isString(r.hash) || !HASH.test(r.hash)) return 'no profile hash';
  // The hash is over the profile itself: a flipped bit anywhere in it shows.
  if (profileHash(r.profile as unknown as Profile) !== r.hash) return 'the profile does not match its hash';
  return isString(r.origin) ? undefined : 'no origin';
}

function checkFirewallLines(value: unknown): boolean {
  const family = (v: unknown) => v === null || (Array.isArray(v) && v.every(isString));
  return isObject(value) && family(value['4']) && family(value['6']);
}

const checkApplied: Check = (r) => checkProfile(r)
  ?? (typeof r.confirmed !== 'boolean' ? 'no confirmed flag' : undefined)
  ?? (!checkFirewallLines(r.firewall) ? 'no firewall lines' : undefined);

const checkKnownGood: Check = (r) => checkProfile(r) ?? (isString(r.confirmedAt) ? undefined : 'no confirmation time');

function checkSnapshotValue(r: Record<string, unknown>, depth: number): string | undefined {
  const tables = isObject(r.firewall) && [r.firewall['4'], r.firewall['6']].every((t) => t === null || isString(t));
  if (!isString(r.takenAt) || !tables) return 'no firewall tables';
  for (const key of ['sysctls', 'files', 'sysfs'] as const) {
    const map = r[key];
    if (!isObject(map) || !Object.values(map).every((v) => v === null || isString(v))) return `no ${key}`;
  }
  if (r.applied !== null && (!isObject(r.applied) || checkApplied(r.applied) !== undefined)) return 'its applied record is corrupt';
  if (r.older === undefined || r.older === null) return undefined;
  if (!isObject(r.older) || depth > 16) return 'an older snapshot is corrupt';
  return checkSnapshotValue(r.older, depth + 1);
}

const checkPending: Check = (r) => (isString(r.hash) ? undefined : 'no hash');
const checkVerified: Check = (r) => (isString(r.hash) && typeof r.drift === 'number' && Array.isArray(r.items) && isString(r.checkedAt) ? undefined : 'not a verify result');
const checkOutcome: Check = (r) => (isString(r.profile) && isString(r.finishedAt) ? undefined : 'not an apply outcome');
const checkOriginals: Check = (r) => ([r.sysctls, r.sysfs].every((m) => isObject(m) && Object.values(m).every((v) => v === null || isString(v)))
  ? undefined : 'not a map of original values');
const checkBoot: Check = (r) => (isString(r.bootId) && (r.outcome === 'applied' || r.outcome === 'fail-closed') ? undefined : 'not a boot outcome');

export class Records {
  readonly applied: RecordFile<AppliedRecord>;
  readonly knownGood: RecordFile<KnownGoodRecord>;
  readonly snapshot: RecordFile<Snapshot>;
  readonly pending: RecordFile<PendingRecord>;
  readonly verified: RecordFile<VerifiedRecord>;
  readonly lastApply: RecordFile<ApplyOutcomeRecord>;
  readonly originals: RecordFile<OriginalsRecord>;
  readonly boot: RecordFile<BootRecord>;

  constructor(readonly dir: string) {
    const at = (name: string) => path.join(dir, `${name}.json`);
    this.applied = new RecordFile(at('applied'), 0o644, checkApplied);
    this.knownGood = new RecordFile(at('known-good'), 0o644, checkKnownGood);
    // The firewall tables as they were, other software's rules included: root's eyes only.
    this.snapshot = new RecordFile(at('snapshot'), 0o600, (r) => checkSnapshotValue(r, 0));
    this.pending = new RecordFile(at('pending'), 0o644, checkPending);
    this.verified = new RecordFile(at('verified'), 0o644, checkVerified);
    this.lastApply = new RecordFile(at('last-apply'), 0o644, checkOutcome);
    this.originals = new RecordFile(at('originals'), 0o644, checkOriginals);
    this.boot = new RecordFile(at('boot'), 0o644, checkBoot);
  }

  /** Gives records written by an older version the mode they have now (a 0644 snapshot becomes 0600). */
  async protect(): Promise<void> {
    for (const record of [this.snapshot]) {
      await chmod(record.file, record.mode).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
}
