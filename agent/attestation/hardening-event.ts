import { isMapping, NOT_JSON, parseJson, PROFILE_LABEL } from '../lib/validate.js';

/**
 * What one hardening measurement says: which profile is in force (name and hash) and the
 * SHA-256 of each part that was loaded (the rendered iptables-restore and ip6tables-restore
 * texts, the sysctls, the files written and the sysfs values: the USB policy lives in the
 * last two), or that no profile is in force. hardening/measure.ts builds it from the
 * engine's plan; the verifier reads it back from the event log.
 *
 * Its text is what the TPM hashes (TPM2_PCR_Event), so it is made once, in a fixed key
 * order, and kept verbatim in the log: the verifier hashes the log's text, never a copy
 * rebuilt from parsed fields.
 */
export const HARDENING_EVENT_TYPE = 'iot-agent/hardening';

/** Who measured: the boot unit, a root `harden` command, the agent in its own process, or the boot guard. */
export const MEASURED_BY = ['boot', 'cli', 'agent', 'guard'] as const;
export type MeasuredBy = (typeof MEASURED_BY)[number];
export const OPERATIONS = ['apply', 'rollback'] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface LoadedParts {
  iptables: string | null;
  ip6tables: string | null;
  sysctls: string;
  files: string;
  sysfs: string;
}

export interface HardeningEvent {
  type: typeof HARDENING_EVENT_TYPE;
  op: Operation;
  by: MeasuredBy;
  /** null: no profile in force (a rollback to before the first apply). */
  profile: string | null;
  profileHash: string | null;
  parts: LoadedParts | null;
  agentVersion: string;
}

export class HardeningEventError extends Error {}

/** The event's text, keys in a fixed order. */
export function hardeningEventText(event: Omit<HardeningEvent, 'type'>): string {
  const parts = event.parts && {
    iptables: event.parts.iptables, ip6tables: event.parts.ip6tables, sysctls: event.parts.sysctls, files: event.parts.files, sysfs: event.parts.sysfs,
  };
  return JSON.stringify({
    type: HARDENING_EVENT_TYPE, op: event.op, by: event.by, profile: event.profile, profileHash: event.profileHash, parts, agentVersion: event.agentVersion,
  });
}

/** Whether two events describe the same state in force (whoever measured it, and how). */
export function sameState(a: HardeningEvent, b: HardeningEvent): boolean {
  return a.profile === b.profile && a.profileHash === b.profileHash && JSON.stringify(a.parts) === JSON.stringify(b.parts);
}

/** Reads an event's text back; anything that is not a hardening event of this format is a HardeningEventError. */
export function parseHardeningEvent(data: string): HardeningEvent {
  const value = parseJson(data);
  if (value === NOT_JSON) throw new HardeningEventError('hardening event: not JSON');
  const e = record(value, 'hardening event', ['type', 'op', 'by', 'profile', 'profileHash', 'parts', 'agentVersion']);
  if (e.type !== HARDENING_EVENT_TYPE) throw new HardeningEventError(`hardening event: type is not ${HARDENING_EVENT_TYPE}`);
  const op = oneOf(e.op, 'op', OPERATIONS);
  const by = oneOf(e.by, 'by', MEASURED_BY);
  const agentVersion = stringOf(e.agentVersion, 'agentVersion', /^[0-9A-Za-z.+~-]{1,64}$/);
  if (e.profile === null) {
    if (e.profileHash !== null || e.parts !== null) throw new HardeningEventError('hardening event: no profile, yet a hash or parts');
    return { type: HARDENING_EVENT_TYPE, op, by, profile: null, profileHash: null, parts: null, agentVersion };
  }
  const profile = stringOf(e.profile, 'profile', PROFILE_LABEL);
  const profileHash = stringOf(e.profileHash, 'profileHash', /^[0-9a-f]{64}$/);
  const p = record(e.parts, 'hardening event parts', ['iptables', 'ip6tables', 'sysctls', 'files', 'sysfs']);
  const digest = (v: unknown, field: string) => stringOf(v, `parts.${field}`, /^[0-9a-f]{64}$/);
  const parts: LoadedParts = {
    iptables: p.iptables === null ? null : digest(p.iptables, 'iptables'),
    ip6tables: p.ip6tables === null ? null : digest(p.ip6tables, 'ip6tables'),
    sysctls: digest(p.sysctls, 'sysctls'),
    files: digest(p.files, 'files'),
    sysfs: digest(p.sysfs, 'sysfs'),
  };
  return { type: HARDENING_EVENT_TYPE, op, by, profile, profileHash, parts, agentVersion };
}

function record(value: unknown, what: string, keys: readonly string[]): Record<string, unknown> {
  if (!isMapping(value)) throw new HardeningEventError(`${what}: not an object`);
  const have = Object.keys(value);
  const unknown = have.find((k) => !keys.includes(k));
  if (unknown !== undefined) throw new HardeningEventError(`${what}: unknown key ${JSON.stringify(unknown.slice(0, 40))}`);
  const missing = keys.find((k) => !have.includes(k));
  if (missing !== undefined) throw new HardeningEventError(`${what}: ${missing} is missing`);
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) throw new HardeningEventError(`hardening event: ${field} is not one of ${allowed.join(', ')}`);
  return value as T;
}

function stringOf(value: unknown, field: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new HardeningEventError(`hardening event: ${field} is not valid`);
  return value;
}
