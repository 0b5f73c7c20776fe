import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Client, Twin } from 'azure-iot-device';
import type { ControlReply, ControlRequest, DaemonSnapshot, DaemonState, DaemonStatus } from '../control/protocol.js';
import { neededEndpoints } from '../commands/needed-endpoints.js';
import { loadConfig, requireIdScope, type AgentConfig } from '../config.js';
import { describeError } from '../lib/errors.js';
import { PRODUCTION_SITE, type HardeningSite } from '../hardening-bridge/site.js';
import type { Logger } from '../log/logger.js';
import { hubWaitMs, stepAfter, type ProvisionStep } from '../provisioning/flow.js';
import { DEFAULT_BACKOFF } from '../retry/backoff.js';
import { ConnectionPolicy, DEFAULT_RECONNECT_SPREAD_MS, type PolicySettings } from '../retry/connection-policy.js';
import { HubProtocolChoice, MQTT_PROBE_MS } from '../retry/hub-protocol.js';
import { readHubProtocolMemory, writeHubProtocolMemory } from '../state/hub-protocol-memory.js';
import type { Assignment } from '../state/assignment-store.js';
import { readConnectionHistory, writeConnectionHistory } from '../state/connection-history.js';
import { ServiceClock } from '../time/service-clock.js';
import { readTpmFacts } from '../tpm/tpm-facts.js';
import { readTpmReport, type TpmReport } from '../tpm/tpm-report.js';
import { formatTransport, parseTransport } from '../config/transport-spec.js';
import type { RuntimeOverrides, TestTimings } from '../runtime-overrides.js';
import { ConnectionFlow, type SessionTimings } from './connection-flow.js';
import { serveControlSocket } from './control-socket.js';
import { DeviceFeatures } from './device-features.js';
import { Generations } from './generations.js';
import { startHeapTrim } from './heap-trim.js';
import { SystemdNotifier } from './systemd-notify.js';
import { DAEMON_LOCK_OWNER, TpmLock } from '../tpm/tpm-lock.js';

export interface DaemonOptions {
  config: AgentConfig;
  configPath: string | undefined;
  log: Logger;
  /** The environment's overrides, parsed once at the CLI edge (agent/runtime-overrides.ts); {} for none. */
  overrides: RuntimeOverrides;
  agentVersion: string;
  /** The restartAgent command: stop, then exit so that systemd starts the agent again. */
  onRestartRequested: () => void;
  /** How long systemd may wait for READY=1 before the daemon sends it unconnected. */
  readyGraceMs?: number;
  /** Where READY/STATUS/WATCHDOG go; systemd-notify by default. */
  notifier?: Pick<SystemdNotifier, keyof SystemdNotifier>;
  /** The service clock; tests give one whose wall clock they move. */
  clock?: ServiceClock;
}

/** Below the unit's TimeoutStartSec (120 s), above a normal cold start on a slow link. */
export const DEFAULT_READY_GRACE_MS = 90_000;

/** The policy's settings: the config's keys, and what a test may shorten. */
export function policySettings(config: AgentConfig, overrides: RuntimeOverrides = {}): PolicySettings {
  const timings = overrides.timings ?? {};
  return {
    reprovision: config.provisioning.reprovision,
    minReprovisionSeconds: timings.minReprovisionSeconds ?? config.provisioning.minReprovisionSeconds,
    hubUnreachableSeconds: timings.hubUnreachableSeconds ?? config.provisioning.hubUnreachableSeconds,
    operatorRetrySeconds: config.provisioning.slowRetryHours * 3_600,
    backoff: timings.backoff ?? DEFAULT_BACKOFF,
    reconnectSpreadMs: timings.reconnectSpreadMs ?? DEFAULT_RECONNECT_SPREAD_MS,
  };
}

/**
 * `iot-agent run`: from power-on to a healthy hub session, and keeping it so. The work is
 * done by one ConnectionFlow per generation (agent/daemon/connection-flow.ts) as the
 * connection policy decides (agent/retry/connection-policy.ts); the daemon owns what
 * outlives a flow: the policy and its history, the service clock, the features, the
 * control socket, the state that `status` and systemd see.
 */
export class Daemon {
  private config: AgentConfig;
  private readonly log: Logger;
  private readonly notifier: Pick<SystemdNotifier, keyof SystemdNotifier>;
  private readonly generations = new Generations();
  private readonly clock: ServiceClock;
  private readonly overrides: RuntimeOverrides;
  private readonly timings: TestTimings;
  private policy: ConnectionPolicy;
  /** Set by start(), before the first flow: it needs what the last run learnt. */
  private protocols!: HubProtocolChoice;
  private state: DaemonState = 'starting';
  private reason: string | undefined;
  private since = new Date();
  private lastError: DaemonStatus['lastError'] = null;
  private flow: ConnectionFlow | undefined;
  private lock: TpmLock | undefined;
  private control: net.Server | undefined;
  private readonly changes = new EventEmitter<{ state: [DaemonState] }>();
  private announcedReady = false;
  private readyGraceTimer: NodeJS.Timeout | undefined;
  /** Set by start() before anything can ask for a flow (a request, a reload, a clock event); status and stop work without. */
  private features: DeviceFeatures | undefined;
  private stopClockWatch: (() => void) | undefined;
  private stopHeapTrim: (() => void) | undefined;

  constructor(private readonly options: DaemonOptions) {
    this.config = options.config;
    this.log = options.log;
    this.notifier = options.notifier ?? new SystemdNotifier();
    this.clock = options.clock ?? new ServiceClock();
    this.overrides = options.overrides;
    this.timings = options.overrides.timings ?? {};
    this.policy = new ConnectionPolicy(policySettings(this.config, this.overrides));
  }

  status(): DaemonStatus {
    const view = this.policy.view();
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      state: this.state,
      reason: this.reason,
      since: this.since.toISOString(),
      pid: process.pid,
      registrationId: this.flow?.identity?.registrationId,
      deviceId: this.flow?.assignment?.deviceId,
      assignedHub: this.flow?.assignment?.assignedHub,
      idScope: this.config.provisioning.idScope,
      hubProtocol: this.flow?.route?.protocol ?? null,
      hubProtocolReason: this.flow?.route?.reason ?? null,
      proxy: this.flow?.proxies?.proxy ? `${this.flow.proxies.proxy.display} (${this.flow.proxies.proxy.source})` : null,
      lastError: this.lastError,
      consecutiveFailures: view.consecutiveFailures,
      nextRetryAt: iso(view.nextAttemptAt),
      dpsHeldOffUntil: iso(view.dpsHeldOffUntil),
      operatorMustAct: view.operatorMustAct,
      telemetryQueue: this.features?.queueFacts() ?? null,
      clockOffsetMs: this.clock.offsetMs() ?? null,
    };
  }

  /** What a support bundle needs from the running daemon, read in-process. */
  snapshot(): DaemonSnapshot {
    return {
      status: this.status(), logLevel: this.log.currentLevel(), recentLog: this.log.recent(Number.MAX_SAFE_INTEGER),
      executedCommands: this.features?.executedCount() ?? null,
    };
  }

  /** What the TPM holds, read through the daemon's own connection (swtpm serves one at a time). */
  async tpmReport(): Promise<TpmReport> {
    const tpm = this.flow?.tpm;
    if (!tpm) throw new Error(`the TPM is not open (${this.reason ?? this.state})`);
    return readTpmReport(tpm, formatTransport(parseTransport(this.tpmTransport(this.config))));
  }

  async start(): Promise<void> {
    requireIdScope(this.config, this.options.configPath);
    this.lock = await TpmLock.acquire(this.config.runtimeDir, DAEMON_LOCK_OWNER);
    this.policy = new ConnectionPolicy(policySettings(this.config, this.overrides), await readConnectionHistory(this.config.stateDir));
    const learnt = await readHubProtocolMemory(this.config.stateDir);
    if (learnt.problem) this.log.warn('state.hub_protocol_ignored', { reason: learnt.problem, treatedAs: 'nothing learnt: 8883 is tried first' });
    this.protocols = new HubProtocolChoice({ setting: this.config.network.hubProtocol, proxied: false, probeMs: MQTT_PROBE_MS }, learnt.memory);
    this.features = await this.createFeatures();
    this.control = await serveControlSocket(this.config.runtimeDir, (request, reply) => this.onControl(request, reply));
    // Nothing is awaited from here to the first flow: no request, feature or clock event finds the daemon without one.
    this.features.start();
    this.clock.on('corrected', (offsetMs) => this.resign(`the service clock differs from the local one by ${Math.round(offsetMs / 1000)} s`));
    this.clock.on('jumped', (byMs) => this.resign(`the wall clock jumped by ${Math.round(byMs / 1000)} s`));
    this.stopClockWatch = this.clock.watch();
    this.notifier.startWatchdog(() => this.state !== 'stopping');
    this.stopHeapTrim = startHeapTrim(this.log, this.timings.heapTrimSeconds);
    // READY=1 means connected; an offline board still tells systemd it is up once the grace
    // time has passed, so boot completes and units ordered after the agent start.
    this.readyGraceTimer = setTimeout(() => this.announceReady(`started, not connected yet: ${this.reason ?? this.state}`),
      this.options.readyGraceMs ?? DEFAULT_READY_GRACE_MS);
    this.readyGraceTimer.unref();
    this.log.info('daemon.started', { pid: process.pid, config: this.options.configPath ?? 'default' });
    this.generations.next();
    void this.newFlow().run();
  }

  async stop(): Promise<void> {
    this.generations.next();
    this.setState('stopping');
    clearTimeout(this.readyGraceTimer);
    this.stopClockWatch?.();
    this.stopHeapTrim?.();
    this.notifier.stopping();
    this.notifier.stopWatchdog();
    await this.flow?.stop();
    await this.features?.stop();
    await new Promise<void>((resolve) => (this.control ? this.control.close(() => resolve()) : resolve()));
    await this.lock?.release();
    this.log.info('daemon.stopped');
  }

  /** SIGHUP: read the config again; restart the flow only when something that matters changed. */
  async reload(): Promise<void> {
    let next: AgentConfig;
    try {
      next = await loadConfig(this.options.configPath);
      requireIdScope(next, this.options.configPath);
    } catch (err) {
      this.log.error('config.reload_failed', { err, keeping: 'the running configuration' });
      return;
    }
    this.log.setLevel(next.log.level);
    this.features!.onConfigReloaded(next);
    this.policy.update(policySettings(next, this.overrides));
    const before = JSON.stringify({ ...this.config, log: undefined, telemetry: undefined });
    this.config = next;
    if (JSON.stringify({ ...next, log: undefined, telemetry: undefined }) === before) {
      this.log.info('config.reloaded', { changed: 'log level, telemetry, retry timings or nothing' });
      return;
    }
    this.log.info('config.reloaded', { changed: 'provisioning, TPM, TLS or directories: restarting the flow' });
    await this.restartFlow();
  }

  /** A new generation from the TPM up, once the running one has ended. */
  private async restartFlow(): Promise<void> {
    await this.endFlow();
    void this.newFlow().run();
  }

  /** The flow of the current generation (endFlow() has started a new one). */
  private newFlow(): ConnectionFlow {
    const generation = this.generations.value;
    const features = this.features!;
    this.flow = new ConnectionFlow({
      log: this.log,
      policy: this.policy,
      protocols: this.protocols,
      clock: this.clock,
      generations: this.generations,
      timings: this.sessionTimings(),
      transport: (config) => this.tpmTransport(config),
      setState: (state, reason, failure) => this.setState(state, reason, failure),
      connected: (assignment) => this.onConnected(assignment),
      attach: (client: Client, twin: Twin, desired) => features.onConnected(client, twin, desired),
      detach: () => features.detach(),
      remember: () => writeConnectionHistory(this.config.stateDir, this.policy.history()),
      rememberProtocol: (memory) => writeHubProtocolMemory(this.config.stateDir, memory),
    }, this.config, generation, this.options.configPath);
    return this.flow;
  }

  /** Ends the running flow (its session and TPM connection); the next newFlow() starts a new generation. */
  private async endFlow(): Promise<void> {
    this.generations.next();
    this.features!.detach();
    await this.flow!.stop();
  }

  private sessionTimings(): SessionTimings {
    const { timings } = this;
    return {
      ...(timings.keepAliveSeconds ? { keepAliveSeconds: timings.keepAliveSeconds } : {}),
      ...(timings.tokenLifetimeSeconds ? { tokenLifetimeSeconds: timings.tokenLifetimeSeconds } : {}),
      ...(timings.tokenRenewalMarginSeconds ? { tokenRenewalMarginSeconds: timings.tokenRenewalMarginSeconds } : {}),
      ...(timings.hubProbeSeconds ? { hubProbeMs: timings.hubProbeSeconds * 1000 } : {}),
    };
  }

  private onConnected(assignment: Assignment): void {
    this.setState('ready', `connected to ${assignment.assignedHub} as ${assignment.deviceId}`);
    this.announceReady(`ready: ${assignment.deviceId} on ${assignment.assignedHub}`);
  }

  /** The clock was corrected or jumped while connected: a fresh token, signed against the right time. */
  private resign(why: string): void {
    if (!this.flow!.session?.connected) return;
    this.log.warn('hub.token_resigned', { why });
    void this.restartFlow();
  }

  /**
   * The reprovision command, and `iot-agent provision` through the daemon: one registration
   * in the open (steps reported), keeping the assignment in force until DPS has answered.
   */
  private async reprovisionNow(onStep?: (step: ProvisionStep, words: string) => void): Promise<Assignment> {
    this.log.info('daemon.reprovision_requested');
    const fallback = this.flow!.assignment;
    await this.endFlow();
    const flow = this.newFlow();
    const assignment = await flow.reprovision(fallback, onStep);
    await this.waitForReady(flow.generation, hubWaitMs(this.timings.hubWaitSeconds));
    return assignment;
  }

  /** Commands, twin and telemetry on top of the session: created once, attached on every connect. */
  private createFeatures(): Promise<DeviceFeatures> {
    return DeviceFeatures.create({
      config: this.config,
      log: this.log,
      agentVersion: this.options.agentVersion,
      identity: () => this.status(),
      tpm: () => this.flow!.tpm,
      tpmFacts: async () => {
        const tpm = this.flow!.tpm;
        if (!tpm) return undefined;
        const facts = await readTpmFacts(tpm);
        return { manufacturer: facts.manufacturerName, firmware: facts.firmwareVersion };
      },
      endpoints: () => neededEndpoints(this.config, this.flow!.assignment, this.flow!.route?.protocol),
      reprovision: async () => { await this.reprovisionNow(); },
      restart: () => this.options.onRestartRequested(),
      hardeningSite: this.hardeningSite(),
      reboot: this.overrides.reboot,
      // Loaded on use: the bundle's collectors and tar are not needed to run.
      supportBundle: async (since, dir, now) => (await import('../support/daemon-sources.js')).buildInDaemon({
        config: this.config, configPath: this.options.configPath, hardening: this.hardeningSite(), snapshot: () => this.snapshot(), tpmReport: () => this.tpmReport(),
      }, since, dir, now),
      telemetrySecondMs: this.timings.telemetrySecondMs,
    });
  }

  /** The TPM transport in force: the environment's override, else the config's. */
  private tpmTransport(config: AgentConfig): string {
    return this.overrides.tpmTransport ?? config.tpm.transport;
  }

  private hardeningSite(): HardeningSite {
    return this.overrides.hardeningSite ?? PRODUCTION_SITE;
  }

  private async onControl(request: ControlRequest, reply: (line: ControlReply) => void): Promise<void> {
    switch (request.op) {
      case 'status':
        reply({ event: 'status', ...this.status() });
        return;
      case 'tpm':
        reply({ event: 'tpm', pid: process.pid, ...await this.tpmReport() });
        return;
      case 'support':
        reply({ event: 'support', ...this.snapshot() });
        return;
      case 'provision':
        return this.provisionOnRequest(reply);
    }
  }

  /** A technician asked (`iot-agent provision`): one registration in the open, each step reported. */
  private async provisionOnRequest(reply: (line: ControlReply) => void): Promise<void> {
    let done: ProvisionStep | undefined;
    try {
      const assignment = await this.reprovisionNow((step, words) => {
        done = step;
        reply({ event: 'step', step, message: words });
      });
      reply({ event: 'step', step: 'connected', message: `connected to ${assignment.assignedHub} as ${assignment.deviceId}` });
    } catch (err) {
      reply({ event: 'error', step: stepAfter(done), message: describeError(err) });
      return;
    }
    reply({ event: 'done', ...this.status() });
  }

  private waitForReady(generation: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.changes.off('state', onState);
        if (err) reject(err);
        else resolve();
      };
      const onState = (state: DaemonState) => {
        if (this.generations.value !== generation) done(new Error('superseded by another request'));
        else if (state === 'ready') done();
      };
      const timer = setTimeout(() => done(new Error(`provisioned, but not connected to the hub within ${timeoutMs / 1000} s (${this.reason ?? this.state})`)), timeoutMs);
      this.changes.on('state', onState);
      onState(this.state);
    });
  }

  private announceReady(status: string): void {
    clearTimeout(this.readyGraceTimer);
    if (this.announcedReady) return;
    this.announcedReady = true;
    this.notifier.ready(status);
  }

  private setState(state: DaemonState, reason?: string, failure?: string): void {
    if (failure !== undefined) this.lastError = { message: failure, at: new Date().toISOString() };
    if (this.state === 'stopping' && state !== 'stopping') return;
    if (state === this.state && reason === this.reason) return;
    this.log.info('state.changed', { from: this.state, to: state, reason });
    this.state = state;
    this.reason = reason;
    this.since = new Date();
    this.notifier.status(reason ? `${state}: ${reason}` : state);
    this.changes.emit('state', state);
  }
}
