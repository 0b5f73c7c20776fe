import { AgentError, ExitCode } from './errors.js';
import { hardeningSiteFromEnv, type HardeningSite } from './commands/hardening-access.js';
import { rebootSettingsFromEnv } from './commands/reboot-scheduler.js';
import type { BackoffPolicy } from './retry/backoff.js';
import { parseTransport } from './config/transport-spec.js';

/**
 * What the environment may change of a run, read once at the CLI edge and handed down
 * explicitly, so that `run`, `provision`, `check` and `tpm info` agree:
 * - IOT_AGENT_TPM: the TPM transport, over the config's tpm.transport (a technician's or
 *   QA's quick switch; `--tpm` wins over it where a command has that option);
 * - IOT_AGENT_TEST_TIMINGS, IOT_AGENT_HARDENING_TEST, IOT_AGENT_REBOOT_COMMAND: test knobs
 *   (shorter timings, a hardening sandbox, a recorded reboot). The packaged unit sets none.
 */
export interface RuntimeOverrides {
  tpmTransport?: string;
  timings?: TestTimings;
  hardeningSite?: HardeningSite;
  reboot?: { argv?: string[]; delaySeconds?: number };
}

/** IOT_AGENT_TEST_TIMINGS, e.g. `tokenLifetime=6,renewalMargin=2,keepAlive=5,backoff=fast,spread=0,minReprovision=2,hubProbe=3,telemetrySecondMs=100`. */
export interface TestTimings {
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  keepAliveSeconds?: number;
  backoff?: BackoffPolicy;
  reconnectSpreadMs?: number;
  minReprovisionSeconds?: number;
  /** How long 8883 gets in network.hubProtocol auto before WebSockets are tried. */
  hubProbeSeconds?: number;
  /** Milliseconds in a second of the telemetry interval: tests keep its 10 s floor and still see messages every second. */
  telemetrySecondMs?: number;
}

export const FAST_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 2_000, multiplier: 2 };

/** IOT_AGENT_TPM as given (unchecked: `check` reports a bad one as a failed check rather than refusing to run). */
export function tpmTransportOverride(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.IOT_AGENT_TPM?.trim() || undefined;
}

export function runtimeOverrides(env: NodeJS.ProcessEnv = process.env): RuntimeOverrides {
  const overrides: RuntimeOverrides = {};
  const tpm = tpmTransportOverride(env);
  if (tpm) {
    try {
      parseTransport(tpm);
    } catch (err) {
      throw new AgentError(`IOT_AGENT_TPM: ${(err as Error).message}`, { exitCode: ExitCode.usage, hint: (err as AgentError).hint });
    }
    overrides.tpmTransport = tpm;
  }
  if (env.IOT_AGENT_TEST_TIMINGS) overrides.timings = parseTestTimings(env.IOT_AGENT_TEST_TIMINGS);
  if (env.IOT_AGENT_HARDENING_TEST) overrides.hardeningSite = hardeningSiteFromEnv(env);
  if (env.IOT_AGENT_REBOOT_COMMAND) overrides.reboot = rebootSettingsFromEnv(env);
  return overrides;
}

const TIMING_KEYS: Record<string, (value: string, timings: TestTimings) => void> = {
  tokenLifetime: (v, t) => { t.tokenLifetimeSeconds = seconds(v, 'tokenLifetime', 2, 86_400); },
  renewalMargin: (v, t) => { t.tokenRenewalMarginSeconds = seconds(v, 'renewalMargin', 1, 86_400); },
  keepAlive: (v, t) => { t.keepAliveSeconds = seconds(v, 'keepAlive', 1, 3_600); },
  spread: (v, t) => { t.reconnectSpreadMs = seconds(v, 'spread', 0, 3_600) * 1000; },
  minReprovision: (v, t) => { t.minReprovisionSeconds = seconds(v, 'minReprovision', 0, 86_400); },
  hubProbe: (v, t) => { t.hubProbeSeconds = seconds(v, 'hubProbe', 1, 600); },
  telemetrySecondMs: (v, t) => { t.telemetrySecondMs = seconds(v, 'telemetrySecondMs', 10, 1_000); },
  backoff: (v, t) => {
    if (v !== 'fast' && v !== 'default') throw timingsError(`backoff=${v}: expected backoff=fast or backoff=default`);
    t.backoff = v === 'fast' ? FAST_BACKOFF : undefined;
  },
};

export function parseTestTimings(spec: string): TestTimings {
  const timings: TestTimings = {};
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = eq === -1 ? part : part.slice(0, eq);
    const apply = TIMING_KEYS[key];
    if (eq === -1 || !apply) throw timingsError(`${JSON.stringify(part)}: expected one of ${Object.keys(TIMING_KEYS).map((k) => `${k}=…`).join(', ')}`);
    apply(part.slice(eq + 1), timings);
  }
  const { tokenLifetimeSeconds: life, tokenRenewalMarginSeconds: margin } = timings;
  if (life !== undefined && margin === undefined) timings.tokenRenewalMarginSeconds = Math.max(1, Math.floor(life / 4));
  if (life !== undefined && timings.tokenRenewalMarginSeconds! >= life) throw timingsError('renewalMargin must be below tokenLifetime');
  return timings;
}

function seconds(value: string, key: string, min: number, max: number): number {
  const n = /^\d{1,6}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw timingsError(`${key}=${value}: expected whole seconds from ${min} to ${max}`);
  return n;
}

function timingsError(reason: string): AgentError {
  return new AgentError(`IOT_AGENT_TEST_TIMINGS ${reason}`, { exitCode: ExitCode.usage, hint: 'a test knob; unset it for production' });
}
