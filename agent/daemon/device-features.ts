import path from 'node:path';
import type { Client, Twin } from 'azure-iot-device';
import { DEFAULT_STATE_DIR } from '../../hardening/records.js';
import type { HostPort } from '../../hardening/probe.js';
import { EVENT_LOG_FILE, PcrMeasure } from '../attestation/hardening-measure.js';
import { attestationAccess } from '../commands/attestation-access.js';
import { CommandEndpoint } from '../commands/command-endpoint.js';
import type { CommandContext } from '../commands/command.js';
import { ExecutedIds } from '../commands/executed-ids.js';
import { RebootScheduler } from '../commands/reboot-scheduler.js';
import { CommandRegistry, type CommandReport } from '../commands/registry.js';
import type { AgentConfig } from '../config.js';
import { hardeningAccess } from '../hardening-bridge/access.js';
import type { HardeningSite } from '../hardening-bridge/site.js';
import type { Level, Logger } from '../log/logger.js';
import type { RebootOverride } from '../runtime-overrides.js';
import { DiskQueue, queueFacts, type QueueFacts } from '../telemetry/disk-queue.js';
import { HealthSampler } from '../telemetry/health.js';
import { systemInfoInChild } from '../telemetry/system-info-process.js';
import { readSystemSummary } from '../telemetry/system-summary.js';
import type { TpmClient } from '../tpm/tpm-client.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { DesiredSync, type ApplyOutcome } from '../twin/desired-sync.js';
import { ReportedProperties } from '../twin/reporter.js';
import { guardTwinMerges } from '../azure-sdk/twin-merges.js';
import type { DesiredFeed } from '../twin/desired-feed.js';
import type { BundleResult } from '../support/bundle.js';
import { FeatureSet } from './feature.js';
import { supportUpload } from './support-upload.js';

/** What the daemon lends to the features: facts about the device and the actions only it can take. */
export interface FeatureHooks {
  config: AgentConfig;
  log: Logger;
  agentVersion: string;
  identity(): { registrationId?: string; deviceId?: string; assignedHub?: string; state: string; since: string };
  tpmFacts(): Promise<{ manufacturer: string; firmware: string } | undefined>;
  /** The daemon's TPM connection of the moment: attestation quotes with it, and in-process hardening measures with it. */
  tpm(): TpmClient | undefined;
  /** The hub (8883) and DPS (443) a hardening change must keep reachable. */
  endpoints(): HostPort[];
  reprovision(): Promise<void>;
  restart(): void;
  hardeningSite: HardeningSite;
  /** The reboot program and delay when a test replaces them. */
  reboot: RebootOverride | undefined;
  /** Builds a support bundle with the daemon's own sources (uploadSupportBundle). */
  supportBundle(since: Date, outputDir: string, now: Date): Promise<BundleResult>;
  /** Milliseconds in a second of the telemetry interval (tests shorten it; 1000 otherwise). */
  telemetrySecondMs?: number;
}

const RESULT_MESSAGE_CHARS = 200;
/**
 * Where results of command names nobody registered go in `lastCommands`: a key the IoT Hub
 * query language can address (Microsoft Learn, device twins: keys in queries may not hold
 * whitespace or ()<>@,;:\"/?={}), e.g. `properties.reported.lastCommands.unknownCommand`.
 */
export const UNKNOWN_COMMAND_KEY = 'unknownCommand';

/**
 * The device's features on top of the hub session, created once per daemon, as one
 * FeatureSet (agent/daemon/feature.ts): the reported state, the writable properties,
 * commands (direct methods and C2D envelopes), health telemetry with its disk queue and the
 * hardening report. Each is attached to the new SDK client after every (re)connect and
 * detached when the link drops.
 *
 * Command results: every result goes to the twin's reported `lastCommands.<command>`
 * (coalesced); results of C2D envelopes, and the final outcome of slow work (reboot,
 * reprovision, applyHardening) however it was asked for, also go out as D2C messages with
 * `iot-agent-message=command-result` and `correlationId` = the envelope id, through the
 * same disk queue as telemetry (so they survive outages too).
 */
export class DeviceFeatures {
  readonly registry: CommandRegistry;
  private readonly reported: ReportedProperties;
  private readonly desired: DesiredSync;
  private readonly endpoint: CommandEndpoint;
  private readonly hardening: ReturnType<typeof hardeningAccess>;
  private readonly attestation: ReturnType<typeof attestationAccess>;
  private logLevel: Level;
  private hardeningProfile: string | undefined;
  private attached: Client | undefined;
  private configured: AgentConfig['telemetry'];
  private facts: Promise<[{ manufacturer: string; firmware: string } | undefined, Record<string, unknown>]> | undefined;
  private readonly features: FeatureSet;

  private constructor(private readonly hooks: FeatureHooks, private readonly telemetry: Telemetry, private readonly executed: ExecutedIds) {
    const { log } = hooks;
    this.logLevel = hooks.config.log.level;
    this.configured = { ...hooks.config.telemetry };
    this.reported = new ReportedProperties(log.child({ component: 'twin' }));
    // In-process applies (root, QA) are measured through the daemon's own TPM connection:
    // swtpm serves one connection at a time, and the daemon holds it.
    const daemonTpm = {
      open: () => {
        const client = hooks.tpm();
        return client ? Promise.resolve(client.transport) : Promise.reject(new Error('the agent has no TPM connection yet'));
      },
      release: () => Promise.resolve(),
    };
    const measure = new PcrMeasure({
      pcr: hooks.config.attestation.pcr, by: 'agent', tpm: daemonTpm, agentVersion: hooks.agentVersion,
      warn: (message) => log.warn('hardening.measure_failed', { message }),
    });
    this.hardening = hardeningAccess(hooks.hardeningSite, () => hooks.endpoints(), { measure });
    const site = hooks.hardeningSite;
    this.attestation = attestationAccess({
      tpm: () => hooks.tpm(),
      pcr: hooks.config.attestation.pcr,
      eventLogPath: path.join(site.stateDir ?? path.join(site.root, DEFAULT_STATE_DIR), EVENT_LOG_FILE),
      onChange: (attestation) => this.reported.update({ attestation }),
    });
    const reboot = new RebootScheduler(log, hooks.reboot?.argv, hooks.reboot?.delaySeconds);
    const context: CommandContext = {
      log,
      agentVersion: hooks.agentVersion,
      identity: () => hooks.identity(),
      requestReprovision: () => hooks.reprovision(),
      requestRestart: () => setTimeout(() => hooks.restart(), 300),
      reboot,
      telemetry: { intervalSeconds: () => telemetry.intervalSeconds(), setIntervalSeconds: (s) => this.setTelemetryInterval(s) },
      hardening: {
        apply: async (profile, timeout) => {
          try {
            return await this.hardening.apply(profile, timeout);
          } finally {
            void this.reportHardening();
          }
        },
        status: () => this.hardening.status(),
      },
      attestation: this.attestation,
      systemInfo: () => systemInfoInChild(log),
      support: supportUpload({ config: hooks.config, client: () => this.attached, build: (since, dir, now) => hooks.supportBundle(since, dir, now) }),
    };
    this.registry = new CommandRegistry(context, (result) => this.onResult(result));
    this.endpoint = new CommandEndpoint(this.registry, executed, (result) => this.onResult(result), log.child({ component: 'commands' }));
    this.desired = new DesiredSync({
      telemetryIntervalSeconds: (seconds: number) => {
        this.setTelemetryInterval(seconds);
        return Promise.resolve({ ac: 200, ad: 'applied' });
      },
      logLevel: (level: Level) => {
        this.logLevel = level;
        log.setLevel(level);
        return Promise.resolve({ ac: 200, ad: 'applied' });
      },
      hardeningProfile: async (profile: string) => this.applyDesiredProfile(profile),
    }, (key) => ({ telemetryIntervalSeconds: telemetry.intervalSeconds(), logLevel: this.logLevel, hardeningProfile: this.hardeningProfile })[key],
    this.reported, log.child({ component: 'twin' }));
    this.features = new FeatureSet([
      {
        name: 'reported',
        attach: ({ twin }) => {
          twin.on('error', (err: Error) => log.warn('twin.error', { err }));
          this.reported.attach(twin);
          // Not awaited: reading the TPM and the OS must not hold up `ready`.
          void this.staticReport().then((report) => this.reported.update(report), (err: unknown) => log.warn('twin.report_failed', { err }));
        },
        detach: () => this.reported.detach(),
      },
      {
        name: 'desired',
        attach: ({ twin, desired }) => desired.start(twin.properties.desired, {
          full: (doc) => void this.desired.handleFull(doc),
          patch: (doc) => void this.desired.handlePatch(doc),
        }),
      },
      { name: 'commands', attach: ({ client }) => this.endpoint.attach(client) },
      {
        name: 'telemetry',
        start: () => telemetry.start(),
        stop: () => telemetry.stop(),
        attach: ({ client }) => telemetry.attach(client),
        detach: () => telemetry.detach(),
      },
      { name: 'hardening', attach: () => void this.reportHardening() },
    ], log);
  }

  static async create(hooks: FeatureHooks): Promise<DeviceFeatures> {
    const { config, log } = hooks;
    guardTwinMerges(log.child({ component: 'twin' }));
    const queue = await DiskQueue.open(path.join(config.stateDir, 'telemetry'), config.telemetry.queueLimit, log.child({ component: 'telemetry' }));
    const executed = await ExecutedIds.open(config.stateDir, log);
    const made: { features?: DeviceFeatures } = {};
    const health = new HealthSampler();
    const telemetry = new Telemetry({
      queue, log: log.child({ component: 'telemetry' }), intervalSeconds: config.telemetry.intervalSeconds, sample: () => health.sample(),
      maxMessagesPerSecond: config.telemetry.maxMessagesPerSecond, secondMs: hooks.telemetrySecondMs,
      connection: () => {
        const { state, since } = hooks.identity();
        return { state: made.features?.attached ? 'connected' : 'disconnected', daemonState: state, since };
      },
    });
    made.features = new DeviceFeatures(hooks, telemetry, executed);
    return made.features;
  }

  start(): void {
    this.features.start();
  }

  async stop(): Promise<void> {
    this.attached = undefined;
    await this.features.stop();
  }

  /** HubSession's onConnected: every feature attached to the new client, in order. Never throws. */
  async onConnected(client: Client, twin: Twin, desired: DesiredFeed): Promise<void> {
    this.attached = client;
    await this.features.attach({ client, twin, desired });
  }

  /** SIGHUP: a changed telemetry interval or rate cap applies now; a changed queue limit at the next start. */
  onConfigReloaded(config: AgentConfig): void {
    const { telemetry } = config;
    if (telemetry.intervalSeconds !== this.configured.intervalSeconds) this.setTelemetryInterval(telemetry.intervalSeconds);
    if (telemetry.maxMessagesPerSecond !== this.configured.maxMessagesPerSecond) this.telemetry.setMaxMessagesPerSecond(telemetry.maxMessagesPerSecond);
    if (telemetry.queueLimit !== this.configured.queueLimit) this.hooks.log.warn('config.reload_partial', { key: 'telemetry.queueLimit', appliesAt: 'the next start' });
    this.configured = { ...telemetry };
  }

  queueFacts(): QueueFacts {
    return queueFacts(this.telemetry.queueStats());
  }

  executedCount(): number {
    return this.executed.count();
  }

  detach(): void {
    this.attached = undefined;
    this.features.detach();
  }

  private async staticReport(): Promise<Record<string, unknown>> {
    const { registrationId, deviceId } = this.hooks.identity();
    // Read once per process: neither the TPM nor the OS release change under a running agent.
    this.facts ??= Promise.all([this.hooks.tpmFacts().catch(() => undefined), readSystemSummary()]);
    const [tpm, system] = await this.facts;
    if (!tpm) this.facts = undefined;
    const attestation = await this.attestation.report().catch(() => null);
    // No logLevel here: it is a writable property, whose reported value is its acknowledgement (DesiredSync).
    return {
      agentVersion: this.hooks.agentVersion, registrationId: registrationId ?? null, deviceId: deviceId ?? null,
      tpm: tpm ?? null, system, telemetry: this.telemetry.stats(),
      commands: { known: this.registry.names().join(',') }, ...(attestation ? { attestation } : {}),
    };
  }

  private setTelemetryInterval(seconds: number): void {
    this.telemetry.setIntervalSeconds(seconds);
    this.reported.update({ telemetry: this.telemetry.stats() });
  }

  private async reportHardening(): Promise<void> {
    try {
      const summary = await this.hardening.summary();
      this.hardeningProfile = summary.profile ?? undefined;
      this.reported.update({ hardening: { ...summary, checkedAt: new Date().toISOString() } });
    } catch (err) {
      this.hooks.log.warn('hardening.status_failed', { err });
    }
  }

  /**
   * A desired profile goes through the same exclusive command as applyHardening (waiting
   * while another runs) — unless it is already applied, confirmed and without drift: every
   * agent start sees the desired profile again, and re-running a confirmed transaction then
   * would hold the exclusive slot and risk a needless rollback window.
   */
  private async applyDesiredProfile(profile: string): Promise<ApplyOutcome> {
    const current = await this.hardening.summary().catch(() => undefined);
    if (current?.profile === profile && current.confirmed === true && current.drift === 0) {
      return { ac: 200, ad: `profile ${profile} already applied` };
    }
    const attempt = async (): Promise<{ ac: number; ad: string }> => {
      for (let tries = 0; tries < 120; tries++) {
        const { reply, final } = await this.registry.execute('applyHardening', { profile }, { via: 'twin' });
        if (reply.status !== 409) {
          // A refusal's `final` is the refusal itself.
          const outcome = await final;
          return { ac: outcome.status, ad: messageOf(outcome.payload) };
        }
        await new Promise((resolve) => setTimeout(resolve, 5_000));
      }
      return { ac: 409, ad: 'another exclusive command kept running for 10 minutes; set the profile again' };
    };
    return { ac: 202, ad: `applying profile ${profile}`, final: attempt() };
  }

  private onResult(result: CommandReport): void {
    const key = this.registry.names().includes(result.command) ? result.command : UNKNOWN_COMMAND_KEY;
    this.reported.update({
      lastCommands: { [key]: { id: result.id ?? null, via: result.via, status: result.status, phase: result.phase, at: result.at, message: messageOf(result.payload) } },
      telemetry: this.telemetry.stats(),
    });
    if (result.via === 'c2d' || result.phase === 'final') {
      void this.telemetry.enqueue('command-result', result, result.id).catch((err: unknown) => this.hooks.log.warn('command.result_not_queued', { err }));
    }
  }
}

function messageOf(payload: unknown): string {
  const message = typeof payload === 'object' && payload !== null ? (payload as { message?: unknown }).message : undefined;
  const text = typeof message === 'string' ? message : '';
  return text.length > RESULT_MESSAGE_CHARS ? `${text.slice(0, RESULT_MESSAGE_CHARS - 3)}...` : text;
}
