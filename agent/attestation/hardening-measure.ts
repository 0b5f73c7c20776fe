import { createHash } from 'node:crypto';
import path from 'node:path';
import type { EngineView, HardeningOperation, MeasureHook } from '../../hardening/measure.js';
import type { Plan } from '../../hardening/plan.js';
import { applyText } from '../../hardening/restore-text.js';
import { describeError } from '../lib/errors.js';
import { bootId } from '../lib/boot-id.js';
import { parseHardeningEvent, hardeningEventText, sameState, type HardeningEvent, type MeasuredBy, type Operation } from './hardening-event.js';
import { recordMeasurement, type MeasurementOutcome, type TpmSource } from './measurement.js';

/**
 * Measured hardening: after every apply and rollback, what is in force is extended into a
 * TPM PCR (attestation.pcr) and appended to the event log beside the engine's records
 * (`<state dir>/pcr-events.json`). PCRs only ever extend until the next reset, so whoever
 * gains root later can add events but never take back the record of what was loaded.
 *
 * The engine calls `afterChange` (its MeasureHook) inside its lock, so measurements keep the
 * order of the changes. A measurement never fails the hardening: without a TPM, a gap is recorded.
 */
export const EVENT_LOG_FILE = 'pcr-events.json';

export interface PcrMeasureOptions {
  pcr: number;
  by: MeasuredBy;
  tpm: TpmSource;
  agentVersion: string;
  /** Where a failure to record goes (the CLI's stderr, the daemon's log). */
  warn: (message: string) => void;
  bootId?: () => Promise<string>;
  now?: () => Date;
}

export class PcrMeasure implements MeasureHook {
  constructor(private readonly options: PcrMeasureOptions) {}

  async afterChange(engine: EngineView, change: { operation: HardeningOperation; changed: boolean }): Promise<MeasurementOutcome | undefined> {
    try {
      const applied = await engine.applied();
      const plan = applied ? await engine.plan({ profile: applied.profile, origin: applied.origin }) : null;
      const event = hardeningEvent(plan, change.operation, this.options.by, this.options.agentVersion);
      const outcome = await recordMeasurement({
        logPath: path.join(engine.records.dir, EVENT_LOG_FILE),
        pcr: this.options.pcr,
        data: hardeningEventText(event),
        bootId: await (this.options.bootId ?? bootId)(),
        now: (this.options.now ?? (() => new Date()))(),
        tpm: this.options.tpm,
        // A change is always measured; an apply that changed nothing only when the log does not show this state last.
        alreadyRecorded: (last) => !change.changed && last.extended && describesState(last.data, event),
      });
      if (outcome.outcome === 'gap') this.options.warn(`hardening not measured into PCR ${this.options.pcr}: ${outcome.reason}`);
      return outcome;
    } catch (err) {
      this.options.warn(`hardening measurement not recorded: ${describeError(err)}`);
      return undefined;
    }
  }
}

/** The event for a plan in force (null: no profile in force). Pure. */
export function hardeningEvent(plan: Plan | null, op: Operation, by: MeasuredBy, agentVersion: string): Omit<HardeningEvent, 'type'> {
  if (!plan) return { op, by, profile: null, profileHash: null, parts: null, agentVersion };
  const { host } = plan;
  return {
    op, by, profile: plan.profile, profileHash: plan.hash, agentVersion,
    parts: {
      // The rendered restore text with every jump, as `harden plan` shows it: the same for the same rules on any board.
      iptables: plan.firewall[4] ? sha256(applyText(plan.firewall[4], undefined)) : null,
      ip6tables: plan.firewall[6] ? sha256(applyText(plan.firewall[6], undefined)) : null,
      sysctls: sha256(Object.entries(host.sysctls).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} = ${v}\n`).join('')),
      files: sha256(JSON.stringify({ write: host.files.map((f) => [f.path, f.content]), remove: host.removeFiles })),
      sysfs: sha256(JSON.stringify(host.sysfs.map((s) => [s.path, s.value]))),
    },
  };
}

function describesState(data: string, event: Omit<HardeningEvent, 'type'>): boolean {
  try {
    return sameState(parseHardeningEvent(data), { ...event, type: 'iot-agent/hardening' });
  } catch {
    return false;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
