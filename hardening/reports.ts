import type { ProbeResult } from './probe.js';

/** What the engine tells its callers (CLI, commands, twin): plain data. */

export interface DriftItem {
  kind: 'profile' | 'firewall' | 'sysctl' | 'file' | 'sysfs';
  target: string;
  ok: boolean;
  expected: string;
  actual: string;
}

export interface VerifyReport {
  profile: string;
  hash: string;
  appliedHash: string | null;
  drift: number;
  items: DriftItem[];
}

export interface ApplyReport {
  profile: string;
  hash: string;
  changed: boolean;
  confirmed: boolean;
  rolledBack: boolean;
  reason?: string;
  probes?: ProbeResult[];
  /** After an automatic rollback: whether the targets answered again. */
  reconnected?: boolean;
  notes: string[];
  durationMs: number;
}

export interface RollbackReport {
  restoredTo: string;
  exact: boolean;
  notes: string[];
}
