import path from 'node:path';
import { BACKENDS, type Backend } from '../hardening/backend.js';
import { parseHostPort } from '../hardening/probe.js';
import { AgentError, ExitCode } from './lib/errors.js';
import type { HardeningSite } from './hardening-bridge/site.js';
import { NETNS_NAME, parseJson } from './lib/validate.js';
import type { BackoffPolicy } from './retry/backoff.js';
import { parseTransport } from './config/transport-spec.js';

/**
 * What the environment may change of a run, parsed once at the CLI edge (agent/cli.ts) and
 * handed down explicitly: no other module reads these variables.
 * - IOT_AGENT_TPM: the TPM transport, over the config's tpm.transport (a technician's or
 *   QA's quick switch; `--tpm` wins over it where a command has that option);
 * - IOT_AGENT_TEST_TIMINGS, IOT_AGENT_HARDENING_TEST, IOT_AGENT_REBOOT_COMMAND (with
 *   IOT_AGENT_REBOOT_DELAY_SECONDS): test knobs (shorter timings, a hardening sandbox, a
 *   recorded reboot). The packaged unit sets none.
 * A malformed value is a usage error naming the variable.
 */
export interface RuntimeOverrides {
  tpmTransport?: string;
  timings?: TestTimings;
  hardeningSite?: HardeningSite;
  reboot?: RebootOverride;
}

/** IOT_AGENT_TEST_TIMINGS, e.g. `tokenLifetime=6,renewalMargin=2,keepAlive=5,backoff=fast,spread=0,minReprovision=2,hubUnreachable=2,hubProbe=3,hubWait=3,telemetrySecondMs=100,heapTrim=1`. */
export interface TestTimings {
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  keepAliveSeconds?: number;
  backoff?: BackoffPolicy;
  reconnectSpreadMs?: number;
  minReprovisionSeconds?: number;
  /** provisioning.hubUnreachableSeconds below the config's floor of 30 s. */
  hubUnreachableSeconds?: number;
  /** How long 8883 gets in network.hubProtocol auto before WebSockets are tried. */
  hubProbeSeconds?: number;
  /** How long `iot-agent provision` waits for the hub to take the device (60 s). */
  hubWaitSeconds?: number;
  /** Milliseconds in a second of the telemetry interval: tests keep its 10 s floor and still see messages every second. */
  telemetrySecondMs?: number;
  /** How often the daemon looks at its heap (agent/daemon/heap-trim.ts). */
  heapTrimSeconds?: number;
}

/** IOT_AGENT_REBOOT_COMMAND: the reboot program as a JSON argv (tests: a script that records it ran), and its delay. */
export interface RebootOverride {
  argv: string[];
  delaySeconds?: number;
}

export const FAST_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 2_000, multiplier: 2 };

const TEST_KNOB_HINT = 'a test knob; unset it for production';

export interface OverrideOptions {
  /**
   * Keep a malformed IOT_AGENT_TPM as given instead of refusing it: `check` and
   * `support-bundle` report it as a failed TPM check rather than refusing to run.
   */
  tpmAsGiven?: boolean;
}

export function runtimeOverrides(env: NodeJS.ProcessEnv, options: OverrideOptions = {}): RuntimeOverrides {
  const overrides: RuntimeOverrides = {};
  const tpm = env.IOT_AGENT_TPM?.trim();
  if (tpm) {
    if (!options.tpmAsGiven) {
      try {
        parseTransport(tpm);
      } catch (err) {
        throw new AgentError(`IOT_AGENT_TPM: ${(err as Error).message}`, { exitCode: ExitCode.usage, hint: (err as AgentError).hint });
      }
    }
    overrides.tpmTransport = tpm;
  }
  if (env.IOT_AGENT_TEST_TIMINGS) overrides.timings = parseTestTimings(env.IOT_AGENT_TEST_TIMINGS);
  if (env.IOT_AGENT_HARDENING_TEST) overrides.hardeningSite = parseHardeningSite(env.IOT_AGENT_HARDENING_TEST);
  if (env.IOT_AGENT_REBOOT_COMMAND) overrides.reboot = parseRebootOverride(env.IOT_AGENT_REBOOT_COMMAND, env.IOT_AGENT_REBOOT_DELAY_SECONDS);
  return overrides;
}

const TIMING_KEYS: Record<string, (value: string, timings: TestTimings) => void> = {
  tokenLifetime: (v, t) => { t.tokenLifetimeSeconds = seconds(v, 'tokenLifetime', 2, 86_400); },
  renewalMargin: (v, t) => { t.tokenRenewalMarginSeconds = seconds(v, 'renewalMargin', 1, 86_400); },
  keepAlive: (v, t) => { t.keepAliveSeconds = seconds(v, 'keepAlive', 1, 3_600); },
  spread: (v, t) => { t.reconnectSpreadMs = seconds(v, 'spread', 0, 3_600) * 1000; },
  minReprovision: (v, t) => { t.minReprovisionSeconds = seconds(v, 'minReprovision', 0, 86_400); },
  hubUnreachable: (v, t) => { t.hubUnreachableSeconds = seconds(v, 'hubUnreachable', 1, 604_800); },
  hubProbe: (v, t) => { t.hubProbeSeconds = seconds(v, 'hubProbe', 1, 600); },
  hubWait: (v, t) => { t.hubWaitSeconds = seconds(v, 'hubWait', 1, 600); },
  telemetrySecondMs: (v, t) => { t.telemetrySecondMs = seconds(v, 'telemetrySecondMs', 10, 1_000); },
  heapTrim: (v, t) => { t.heapTrimSeconds = seconds(v, 'heapTrim', 1, 600); },
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
  return new AgentError(`IOT_AGENT_TEST_TIMINGS ${reason}`, { exitCode: ExitCode.usage, hint: TEST_KNOB_HINT });
}

/**
 * IOT_AGENT_HARDENING_TEST, `netns=NAME,root=/tmp/x,backend=nft,confirm=10.0.0.2:8883;10.0.0.2:443`:
 * a namespace and a temporary root the test created, never this machine's.
 */
export function parseHardeningSite(spec: string): HardeningSite {
  const fields = new Map(spec.split(',').map((part) => {
    const eq = part.indexOf('=');
    return [part.slice(0, eq), part.slice(eq + 1)] as [string, string];
  }));
  const root = fields.get('root');
  const netns = fields.get('netns');
  if (!root || !path.isAbsolute(root) || root === '/') throw hardeningTestError('needs root=<absolute temporary directory>, never /');
  if (!netns || !NETNS_NAME.test(netns)) throw hardeningTestError('needs netns=<a namespace the test created>');
  const backend = (fields.get('backend') ?? 'auto') as Backend;
  if (!BACKENDS.includes(backend)) throw hardeningTestError(`backend must be one of ${BACKENDS.join(', ')}`);
  const confirm = fields.get('confirm');
  let confirmTargets;
  try {
    confirmTargets = confirm ? confirm.split(';').map(parseHostPort) : undefined;
  } catch (err) {
    throw hardeningTestError(`confirm: ${(err as Error).message}`);
  }
  return { root, netns, backend, ...(confirmTargets ? { confirmTargets } : {}) };
}

function hardeningTestError(reason: string): AgentError {
  return new AgentError(`IOT_AGENT_HARDENING_TEST ${reason}`, { exitCode: ExitCode.usage, hint: TEST_KNOB_HINT });
}

/** IOT_AGENT_REBOOT_COMMAND (a JSON array of strings) and IOT_AGENT_REBOOT_DELAY_SECONDS (whole seconds). */
export function parseRebootOverride(command: string, delay: string | undefined): RebootOverride {
  const argv = parseJson(command);
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    throw new AgentError('IOT_AGENT_REBOOT_COMMAND must be a JSON array of strings (the program and its arguments)', { exitCode: ExitCode.usage, hint: TEST_KNOB_HINT });
  }
  if (delay === undefined || delay === '') return { argv };
  const delaySeconds = /^\d{1,4}$/.test(delay) ? Number(delay) : NaN;
  if (!(delaySeconds <= 3_600)) {
    throw new AgentError(`IOT_AGENT_REBOOT_DELAY_SECONDS=${delay}: expected whole seconds from 0 to 3600`, { exitCode: ExitCode.usage, hint: TEST_KNOB_HINT });
  }
  return { argv, delaySeconds };
}
