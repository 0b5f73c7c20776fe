import { readFile } from 'node:fs/promises';
import type * as Yaml from 'yaml';
import { parseNoProxyEntry, parseProxyUrl, ProxySettingError } from './config/proxy-setting.js';
import { checkRegistrationId } from './config/registration-id-check.js';
import {
  DEFAULT_MAX_MESSAGES_PER_SECOND, DEFAULT_QUEUE_LIMIT, DEFAULT_TELEMETRY_INTERVAL_SECONDS, MAX_MESSAGES_PER_SECOND_RANGE, QUEUE_LIMIT_RANGE,
  TELEMETRY_INTERVAL_RANGE,
} from './config/telemetry-limits.js';
import { DEFAULT_TRANSPORT, parseTransport } from './config/transport-spec.js';
import { AgentError, ExitCode } from './lib/errors.js';
import { requireCopy } from './lib/require-copy.js';
import { requireTransient } from './lib/transient-require.js';
import { isMapping, nearestName, shown } from './lib/validate.js';

export const DEFAULT_CONFIG_PATH = '/etc/iot-agent/config.yaml';

/** A DPS ID scope: letters and digits. */
export const ID_SCOPE_PATTERN = /^[A-Za-z0-9]{3,64}$/;
/** A DNS host name (or an IPv4 address, as QA's local cloud uses): no scheme, no port. */
export const HOST_NAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * PCR 13: of the PCRs the TCG PC Client firmware profile leaves to the OS (8-15), the one
 * the Linux TPM PCR Registry (UAPI Group) gives the narrowest use: systemd-stub's initrd
 * system extensions, which only a unified kernel image with extensions in the ESP makes.
 * Debian's boot chains measure into 8 and 9 (GRUB; U-Boot's measured bootm), 10 (IMA),
 * 14 (shim's MOK list) and, with UKIs, 11, 12 and 15 (systemd).
 */
export const DEFAULT_ATTESTATION_PCR = 13;
export const ATTESTATION_PCR_RANGE = { min: 8, max: 15 } as const;

export const REPROVISION_POLICIES = ['onErrorOnly', 'alwaysOnStartup', 'never'] as const;
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** How the hub session travels: `auto` tries 8883 first and falls back to WebSockets on 443 (README "Networks"). */
export const HUB_PROTOCOLS = ['auto', 'mqtt', 'mqtt-ws'] as const;
export type HubProtocolSetting = (typeof HUB_PROTOCOLS)[number];
/** At most this many network.noProxy entries. */
export const MAX_NO_PROXY_ENTRIES = 64;

export interface AgentConfig {
  provisioning: {
    /** Required to provision; absent in a config that only serves `tpm info` or `harden`. */
    idScope: string | undefined;
    globalEndpoint: string;
    /** Overrides the registration id derived from the EK. */
    registrationId: string | undefined;
    reprovision: (typeof REPROVISION_POLICIES)[number];
    /** At most one re-provisioning caused by the hub (refusal, unreachable) per this many seconds. */
    minReprovisionSeconds: number;
    /** Ask DPS again once the hub has been unreachable this long (0: never). */
    hubUnreachableSeconds: number;
    /**
     * How often to try again, in hours, when DPS says only an operator can help (an
     * enrollment that is disabled, missing or refused): each registration is billed and
     * re-keys the TPM, so such a device must not retry on the short backoff.
     */
    slowRetryHours: number;
  };
  tpm: { transport: string };
  tls: { extraCaFile: string | undefined };
  network: {
    /** `http://[user:password@]host:port`; unset: https_proxy / HTTPS_PROXY from the environment. */
    proxy: string | undefined;
    /** Hosts that go direct; unset: no_proxy / NO_PROXY from the environment. */
    noProxy: string[] | undefined;
    hubProtocol: HubProtocolSetting;
  };
  stateDir: string;
  runtimeDir: string;
  log: { level: (typeof LOG_LEVELS)[number] };
  /** `iot-agent harden guard`: how long a newly applied, unconfirmed profile may keep the hub away before it is reverted. */
  hardening: { bootGraceSeconds: number };
  /** The PCR that hardening is measured into (README "Proving a board's posture"). */
  attestation: { pcr: number };
  telemetry: {
    /** Health telemetry period; the twin and setTelemetryInterval change it at run time. */
    intervalSeconds: number;
    /** Most D2C messages kept on disk while offline; the oldest are dropped (and counted) beyond it. */
    queueLimit: number;
    /** The device's own cap on D2C messages per second, above all while it drains its queue. */
    maxMessagesPerSecond: number;
  };
}

/** Bounds of provisioning.slowRetryHours: at least an hour, at most a week. */
export const SLOW_RETRY_HOURS_RANGE = { min: 1, max: 168 } as const;

export const DEFAULTS: AgentConfig = {
  provisioning: {
    idScope: undefined,
    globalEndpoint: 'global.azure-devices-provisioning.net',
    registrationId: undefined,
    reprovision: 'onErrorOnly',
    minReprovisionSeconds: 3_600,
    hubUnreachableSeconds: 1_800,
    slowRetryHours: 6,
  },
  tpm: { transport: DEFAULT_TRANSPORT },
  tls: { extraCaFile: undefined },
  network: { proxy: undefined, noProxy: undefined, hubProtocol: 'auto' },
  stateDir: '/var/lib/iot-agent',
  runtimeDir: '/run/iot-agent',
  log: { level: 'info' },
  hardening: { bootGraceSeconds: 300 },
  attestation: { pcr: DEFAULT_ATTESTATION_PCR },
  telemetry: { intervalSeconds: DEFAULT_TELEMETRY_INTERVAL_SECONDS, queueLimit: DEFAULT_QUEUE_LIMIT, maxMessagesPerSecond: DEFAULT_MAX_MESSAGES_PER_SECOND },
};

/** A config problem: names the file, the key, the value and what is expected, on one line. */
export class ConfigError extends AgentError {
  static override readonly errorName: string = 'ConfigError';

  constructor(source: string, message: string) {
    super(`config ${source}: ${message}`, { exitCode: ExitCode.usage });
  }
}

/**
 * Reads the config file. The default file may be absent (every key has a default but the
 * ID scope); a file named on the command line must exist.
 */
export async function loadConfig(path?: string): Promise<AgentConfig> {
  const source = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === undefined) return structuredClone(DEFAULTS);
    throw new ConfigError(source, `cannot be read (${code ?? String(err)})`);
  }
  return parseConfig(text, source);
}

export function parseConfig(text: string, source: string): AgentConfig {
  // Loaded here, not at start-up (most CLI runs never read a config file with content), and
  // not held: the daemon reads its config once, and again on SIGHUP.
  const { parse: parseYaml } = requireTransient(() => requireCopy(import.meta.url, 'yaml') as typeof Yaml);
  let document: unknown;
  try {
    document = parseYaml(text, { uniqueKeys: true, prettyErrors: false });
  } catch (err) {
    const firstLine = (err as Error).message.split('\n')[0];
    throw new ConfigError(source, `is not valid YAML: ${firstLine}`);
  }
  if (document === null || document === undefined) return structuredClone(DEFAULTS);
  const v = new Validator(source);
  const root = v.object(document, '');
  v.onlyKeys(root, '', ['provisioning', 'tpm', 'tls', 'network', 'stateDir', 'runtimeDir', 'log', 'hardening', 'attestation', 'telemetry']);
  const provisioning = v.object(root.provisioning ?? {}, 'provisioning');
  v.onlyKeys(provisioning, 'provisioning', ['idScope', 'globalEndpoint', 'registrationId', 'reprovision', 'minReprovisionSeconds',
    'hubUnreachableSeconds', 'slowRetryHours']);
  const tpm = v.object(root.tpm ?? {}, 'tpm');
  v.onlyKeys(tpm, 'tpm', ['transport']);
  const tls = v.object(root.tls ?? {}, 'tls');
  v.onlyKeys(tls, 'tls', ['extraCaFile']);
  const network = v.object(root.network ?? {}, 'network');
  v.onlyKeys(network, 'network', ['proxy', 'noProxy', 'hubProtocol']);
  const log = v.object(root.log ?? {}, 'log');
  v.onlyKeys(log, 'log', ['level']);
  const telemetry = v.object(root.telemetry ?? {}, 'telemetry');
  v.onlyKeys(telemetry, 'telemetry', ['intervalSeconds', 'queueLimit', 'maxMessagesPerSecond']);
  const hardening = v.object(root.hardening ?? {}, 'hardening');
  v.onlyKeys(hardening, 'hardening', ['bootGraceSeconds']);
  const attestation = v.object(root.attestation ?? {}, 'attestation');
  v.onlyKeys(attestation, 'attestation', ['pcr']);

  return {
    provisioning: {
      idScope: v.optional(provisioning.idScope, 'provisioning.idScope', (value, key) =>
        v.matching(value, key, ID_SCOPE_PATTERN, 'an ID scope such as 0ne0012ABCD (letters and digits)')),
      globalEndpoint: v.optional(provisioning.globalEndpoint, 'provisioning.globalEndpoint', (value, key) =>
        v.matching(value, key, HOST_NAME_PATTERN, 'a host name such as global.azure-devices-provisioning.net (no scheme, no port)'))
        ?? DEFAULTS.provisioning.globalEndpoint,
      registrationId: v.optional(provisioning.registrationId, 'provisioning.registrationId', (value, key) =>
        v.checked(value, key, checkRegistrationId)),
      reprovision: v.optional(provisioning.reprovision, 'provisioning.reprovision', (value, key) =>
        v.oneOf(value, key, REPROVISION_POLICIES)) ?? DEFAULTS.provisioning.reprovision,
      // Below a minute, a refused device would cost a billed registration and a TPM re-key every minute.
      minReprovisionSeconds: v.optional(provisioning.minReprovisionSeconds, 'provisioning.minReprovisionSeconds', (value, key) =>
        v.integer(value, key, 60, 7 * 86_400)) ?? DEFAULTS.provisioning.minReprovisionSeconds,
      hubUnreachableSeconds: v.optional(provisioning.hubUnreachableSeconds, 'provisioning.hubUnreachableSeconds', (value, key) =>
        (value === 0 ? 0 : v.integer(value, key, 30, 7 * 86_400, '0 (never) or '))) ?? DEFAULTS.provisioning.hubUnreachableSeconds,
      slowRetryHours: v.optional(provisioning.slowRetryHours, 'provisioning.slowRetryHours', (value, key) =>
        v.integer(value, key, SLOW_RETRY_HOURS_RANGE.min, SLOW_RETRY_HOURS_RANGE.max)) ?? DEFAULTS.provisioning.slowRetryHours,
    },
    tpm: {
      transport: v.optional(tpm.transport, 'tpm.transport', (value, key) =>
        v.checked(value, key, (text) => (parseTransport(text), text))) ?? DEFAULTS.tpm.transport,
    },
    tls: { extraCaFile: v.optional(tls.extraCaFile, 'tls.extraCaFile', (value, key) => v.absolutePath(value, key)) },
    network: {
      proxy: v.optional(network.proxy, 'network.proxy', (value, key) => v.proxyUrl(value, key)),
      noProxy: v.optional(network.noProxy, 'network.noProxy', (value, key) => v.noProxy(value, key)),
      hubProtocol: v.optional(network.hubProtocol, 'network.hubProtocol', (value, key) =>
        v.oneOf(value, key, HUB_PROTOCOLS)) ?? DEFAULTS.network.hubProtocol,
    },
    stateDir: v.optional(root.stateDir, 'stateDir', (value, key) => v.absolutePath(value, key)) ?? DEFAULTS.stateDir,
    runtimeDir: v.optional(root.runtimeDir, 'runtimeDir', (value, key) => v.absolutePath(value, key)) ?? DEFAULTS.runtimeDir,
    log: { level: v.optional(log.level, 'log.level', (value, key) => v.oneOf(value, key, LOG_LEVELS)) ?? DEFAULTS.log.level },
    hardening: {
      // At least the time a board needs to bring its network up and finish a TLS handshake.
      bootGraceSeconds: v.optional(hardening.bootGraceSeconds, 'hardening.bootGraceSeconds', (value, key) =>
        v.integer(value, key, 30, 3_600)) ?? DEFAULTS.hardening.bootGraceSeconds,
    },
    attestation: {
      // Only the PCRs the OS may use and no boot firmware resets: 0-7 belong to the firmware, 16-23 can be reset.
      pcr: v.optional(attestation.pcr, 'attestation.pcr', (value, key) =>
        v.integer(value, key, ATTESTATION_PCR_RANGE.min, ATTESTATION_PCR_RANGE.max)) ?? DEFAULTS.attestation.pcr,
    },
    telemetry: {
      intervalSeconds: v.optional(telemetry.intervalSeconds, 'telemetry.intervalSeconds', (value, key) =>
        v.integer(value, key, TELEMETRY_INTERVAL_RANGE.min, TELEMETRY_INTERVAL_RANGE.max)) ?? DEFAULTS.telemetry.intervalSeconds,
      queueLimit: v.optional(telemetry.queueLimit, 'telemetry.queueLimit', (value, key) =>
        v.integer(value, key, QUEUE_LIMIT_RANGE.min, QUEUE_LIMIT_RANGE.max)) ?? DEFAULTS.telemetry.queueLimit,
      maxMessagesPerSecond: v.optional(telemetry.maxMessagesPerSecond, 'telemetry.maxMessagesPerSecond', (value, key) =>
        v.integer(value, key, MAX_MESSAGES_PER_SECOND_RANGE.min, MAX_MESSAGES_PER_SECOND_RANGE.max)) ?? DEFAULTS.telemetry.maxMessagesPerSecond,
    },
  };
}

/** The ID scope, or a clear error for the commands that cannot work without one. */
export function requireIdScope(config: AgentConfig, source = DEFAULT_CONFIG_PATH): string {
  if (config.provisioning.idScope === undefined) {
    throw new ConfigError(source, 'provisioning.idScope is missing: expected the ID scope of your DPS instance (Azure portal, DPS overview)');
  }
  return config.provisioning.idScope;
}

class Validator {
  constructor(private readonly source: string) {}

  fail(key: string, value: unknown, expected: string): never {
    throw new ConfigError(this.source, `${key || 'the document'}: ${shown(value)} is not valid: expected ${expected}`);
  }

  object(value: unknown, key: string): Record<string, unknown> {
    if (!isMapping(value)) this.fail(key, value, 'a mapping of keys to values');
    return value;
  }

  onlyKeys(object: Record<string, unknown>, key: string, allowed: string[]): void {
    for (const name of Object.keys(object)) {
      if (allowed.includes(name)) continue;
      const where = key ? `${key}.${name}` : name;
      const near = nearestName(name, allowed);
      throw new ConfigError(this.source, `${where}: unknown key${near ? ` (did you mean ${key ? `${key}.` : ''}${near}?)` : ''}; expected one of ${allowed.join(', ')}`);
    }
  }

  optional<T>(value: unknown, key: string, check: (value: unknown, key: string) => T): T | undefined {
    return value === undefined || value === null ? undefined : check(value, key);
  }

  string(value: unknown, key: string, expected: string): string {
    if (typeof value !== 'string') this.fail(key, value, expected);
    return value;
  }

  matching(value: unknown, key: string, pattern: RegExp, expected: string): string {
    const text = this.string(value, key, expected);
    if (!pattern.test(text)) this.fail(key, value, expected);
    return text;
  }

  oneOf<T extends string>(value: unknown, key: string, allowed: readonly T[]): T {
    const expected = `one of ${allowed.join(', ')}`;
    const text = this.string(value, key, expected);
    if (!allowed.includes(text as T)) this.fail(key, value, expected);
    return text as T;
  }

  integer(value: unknown, key: string, min: number, max: number, alternative = ''): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, value, `${alternative}a whole number from ${min} to ${max}`);
    }
    return value;
  }

  /** Checked without ever echoing the value: a proxy URL may hold a password. */
  proxyUrl(value: unknown, key: string): string {
    if (typeof value !== 'string') {
      throw new ConfigError(this.source, `${key}: ${Array.isArray(value) ? 'a list' : `a ${typeof value}`} is not valid: expected a URL such as http://proxy.example:3128`);
    }
    try {
      parseProxyUrl(value, key);
    } catch (err) {
      if (!(err instanceof ProxySettingError)) throw err;
      throw new ConfigError(this.source, `${err.message}; ${err.hint}`);
    }
    return value.trim();
  }

  noProxy(value: unknown, key: string): string[] {
    const entries = typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : value;
    if (!Array.isArray(entries) || entries.length > MAX_NO_PROXY_ENTRIES) {
      this.fail(key, value, `a list of at most ${MAX_NO_PROXY_ENTRIES} host names, .suffixes, IP addresses or CIDRs`);
    }
    return entries.map((entry, i) => {
      const text = this.string(entry, `${key}[${i}]`, 'a host name, .suffix, IP address or CIDR');
      try {
        parseNoProxyEntry(text, `${key}[${i}]`);
      } catch (err) {
        if (!(err instanceof ProxySettingError)) throw err;
        throw new ConfigError(this.source, `${err.message}; ${err.hint}`);
      }
      return text.trim();
    });
  }

  absolutePath(value: unknown, key: string): string {
    return this.matching(value, key, /^\/[^\0]*$/, 'an absolute path');
  }

  checked(value: unknown, key: string, check: (text: string) => string): string {
    const text = this.string(value, key, 'a string');
    try {
      return check(text);
    } catch (err) {
      const hint = err instanceof AgentError && err.hint ? `; ${err.hint}` : '';
      throw new ConfigError(this.source, `${key}: ${(err as Error).message}${hint}`);
    }
  }
}
