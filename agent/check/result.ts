/** What one check found: a status a script can branch on, and words (and a hint) for a person. */
export type CheckStatus = 'pass' | 'warn' | 'fail';

/** The checks in the order they are printed, whatever order they finish in. */
export const CHECK_IDS = [
  'config', 'tpm', 'identity', 'clock', 'state', 'state-dir', 'dps-hold', 'proxy', 'dps-dns', 'dps-tls', 'hub-dns', 'hub-tls', 'hub-wss', 'hub-choice',
] as const;
export type CheckId = (typeof CHECK_IDS)[number];

export interface CheckResult {
  id: CheckId;
  status: CheckStatus;
  message: string;
  hint?: string;
}

export function pass(id: CheckId, message: string): CheckResult {
  return { id, status: 'pass', message };
}

export function warn(id: CheckId, message: string, hint?: string): CheckResult {
  return hint === undefined ? { id, status: 'warn', message } : { id, status: 'warn', message, hint };
}

export function fail(id: CheckId, message: string, hint?: string): CheckResult {
  return hint === undefined ? { id, status: 'fail', message } : { id, status: 'fail', message, hint };
}

/** Seconds for a message, e.g. 5000 → "5 s". */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
