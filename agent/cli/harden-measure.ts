import type { MeasuredBy } from '../attestation/hardening-event.js';
import { PcrMeasure } from '../attestation/hardening-measure.js';
import type { MeasurementOutcome, TpmSource } from '../attestation/measurement.js';
import { DEFAULTS, loadConfig } from '../config.js';
import { describeError } from '../lib/errors.js';
import { openTransport } from '../tpm/open-transport.js';
import { parseTransport } from '../config/transport-spec.js';
import { agentVersion } from '../version.js';
import type { EngineView } from '../../hardening/measure.js';
import type { Operation } from '../attestation/hardening-event.js';

/**
 * A TPM answers a PCR extension in milliseconds; a short deadline keeps a missing or busy
 * one (swtpm serves one connection, and the daemon may hold it) from holding up the boot.
 */
const MEASURE_TIMEOUT_MS = 5_000;

export interface CliMeasureOptions {
  configPath: string | undefined;
  /** --tpm: instead of the config's tpm.transport. */
  tpm: string | undefined;
  by: MeasuredBy;
  warn: (message: string) => void;
}

/**
 * The root CLI's measurement: the TPM and PCR from the root-owned config (an unreadable
 * config is recorded as a gap, never a failed apply), the TPM opened for each measurement
 * and closed after it. `last()` says what the last change measured, for the report.
 */
export async function cliMeasure(options: CliMeasureOptions) {
  let pcr = DEFAULTS.attestation.pcr;
  let tpm: TpmSource;
  try {
    const config = await loadConfig(options.configPath);
    pcr = config.attestation.pcr;
    const spec = parseTransport(options.tpm ?? config.tpm.transport);
    tpm = {
      // A transport that cannot be opened rejects, as the measure expects of open().
      open: () => new Promise((resolve) => { resolve(openTransport(spec, { commandTimeoutMs: MEASURE_TIMEOUT_MS, keyGenerationTimeoutMs: MEASURE_TIMEOUT_MS })); }),
      release: (transport) => transport.close(),
    };
  } catch (err) {
    const reason = `the agent config cannot be used: ${describeError(err)}`;
    tpm = { open: () => Promise.reject(new Error(reason)), release: () => Promise.resolve() };
  }
  const measure = new PcrMeasure({ pcr, by: options.by, tpm, agentVersion: agentVersion(), warn: options.warn });
  let last: (MeasurementOutcome & { pcr: number }) | undefined;
  return {
    async afterChange(engine: EngineView, change: { operation: Operation; changed: boolean }) {
      const outcome = await measure.afterChange(engine, change);
      if (outcome) last = { ...outcome, pcr };
      return outcome;
    },
    last: () => last,
  };
}
