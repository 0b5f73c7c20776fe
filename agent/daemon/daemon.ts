import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import { rebootSettingsFromEnv } from '../commands/reboot-scheduler.js';
import { hardeningSiteFromEnv } from '../commands/hardening-access.js';
import { loadConfig, requireIdScope, type AgentConfig } from '../config.js';
import { describeError } from '../errors.js';
import { HubSession } from '../hub/session.js';
import type { Logger } from '../log/logger.js';
import { decideAtStartup, reprovisionOnRejection } from '../provisioning/decide.js';
import { registerInChild } from '../provisioning/child-process.js';
import { DpsError, type ProvisionStep } from '../provisioning/register.js';
import { Backoff, DEFAULT_BACKOFF, type BackoffPolicy } from '../retry/backoff.js';
import { clearAssignment, readAssignment, writeAssignment, type Assignment } from '../state/assignment-store.js';
import { ensureIdentity, type DeviceIdentity } from '../tpm/identity.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { readTpmFacts } from '../tpm/tpm-facts.js';
import { parseTransport } from '../tpm/transport-spec.js';
import { serveControlSocket, type ControlReply, type ControlRequest } from './control-socket.js';
import { DeviceFeatures } from './device-features.js';
import { SystemdNotifier } from './systemd-notify.js';
import { TpmLock } from './tpm-lock.js';

export type DaemonState = 'starting' | 'provisioning' | 'connecting' | 'ready' | 'degraded' | 'stopping';

export interface DaemonStatus {
  state: DaemonState;
  reason: string | undefined;
  since: string;
  pid: number;
  registrationId: string | undefined;
  deviceId: string | undefined;
  assignedHub: string | undefined;
  idScope: string | undefined;
}

export interface DaemonOptions {
  config: AgentConfig;
  configPath: string | undefined;
  log: Logger;
  /** Tuning for tests; production uses the defaults. */
  backoff?: BackoffPolicy;
  keepAliveSeconds?: number;
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  agentVersion?: string;
  /** The restartAgent command: stop, then exit so that systemd starts the agent again. */
  onRestartRequested?: () => void;
  /** How long systemd may wait for READY=1 before the daemon sends it unconnected. */
  readyGraceMs?: number;
  /** Where READY/STATUS/WATCHDOG go; systemd-notify by default. */
  notifier?: Pick<SystemdNotifier, keyof SystemdNotifier>;
}

/** Below the unit's TimeoutStartSec (120 s), above a normal cold start on a slow link. */
export const DEFAULT_READY_GRACE_MS = 90_000;

/** Thrown inside a flow that a newer one (reload, re-provision, stop) replaced. */
class Superseded extends Error {}

/**
 * `iot-agent run`: from power-on to a healthy hub session, and keeping it so. One flow at a
 * time (a generation); a reload, a re-provision or a stop starts a new generation, and the
 * old flow notices at its next step and ends.
 */
export class Daemon {
  private config: AgentConfig;
  private readonly log: Logger;
  private readonly notifier: Pick<SystemdNotifier, keyof SystemdNotifier>;
  private state: DaemonState = 'starting';
  private reason: string | undefined;
  private since = new Date();
  private generation = 0;
  private tpm: TpmClient | undefined;
  private identity: DeviceIdentity | undefined;
  private assignment: Assignment | undefined;
  private session: HubSession | undefined;
  private lock: TpmLock | undefined;
  private control: net.Server | undefined;
  private readonly sleepers = new Set<() => void>();
  private readonly changes = new EventEmitter<{ state: [DaemonState] }>();
  private flowBackoff: Backoff;
  private announcedReady = false;
  private readyGraceTimer: NodeJS.Timeout | undefined;
  private caPem: string | undefined;
  private features: DeviceFeatures | undefined;

  constructor(private readonly options: DaemonOptions) {
    this.config = options.config;
    this.log = options.log;
    this.notifier = options.notifier ?? new SystemdNotifier();
    this.flowBackoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
  }

  status(): DaemonStatus {
    return {
      state: this.state,
      reason: this.reason,
      since: this.since.toISOString(),
      pid: process.pid,
      registrationId: this.identity?.registrationId,
      deviceId: this.assignment?.deviceId,
      assignedHub: this.assignment?.assignedHub,
      idScope: this.config.provisioning.idScope,
    };
  }

  async start(): Promise<void> {
    requireIdScope(this.config, this.options.configPath);
    this.lock = await TpmLock.acquire(this.config.runtimeDir, 'the iot-agent daemon');
    this.control = await serveControlSocket(this.config.runtimeDir, (request, reply) => this.onControl(request, reply));
    this.features = await this.createFeatures();
    this.features.start();
    this.notifier.startWatchdog(() => this.state !== 'stopping');
    // READY=1 means connected; an offline board still tells systemd it is up once the grace
    // time has passed, so boot completes and units ordered after the agent start.
    this.readyGraceTimer = setTimeout(() => this.announceReady(`started, not connected yet: ${this.reason ?? this.state}`),
      this.options.readyGraceMs ?? DEFAULT_READY_GRACE_MS);
    this.readyGraceTimer.unref();
    this.log.info('daemon.started', { pid: process.pid, config: this.options.configPath ?? 'default' });
    void this.flow(++this.generation);
  }

  async stop(): Promise<void> {
    this.generation++;
    this.setState('stopping');
    clearTimeout(this.readyGraceTimer);
    this.notifier.stopping();
    this.notifier.stopWatchdog();
    this.wakeSleepers();
    await this.session?.stop();
    await this.features?.stop();
    await this.tpm?.close().catch(() => undefined);
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
    this.features?.onConfigReloaded(next);
    const before = JSON.stringify({ ...this.config, log: undefined, telemetry: undefined });
    this.config = next;
    if (JSON.stringify({ ...next, log: undefined, telemetry: undefined }) === before) {
      this.log.info('config.reloaded', { changed: 'log level, telemetry or nothing' });
      return;
    }
    this.log.info('config.reloaded', { changed: 'provisioning, TPM, TLS or directories: restarting the flow' });
    await this.restartFlow();
  }

  private async restartFlow(): Promise<void> {
    void this.flow(await this.endFlow());
  }

  /** Ends the running flow (its session and TPM connection) and returns the next generation. */
  private async endFlow(): Promise<number> {
    const generation = ++this.generation;
    this.wakeSleepers();
    this.features?.detach();
    await this.session?.stop();
    this.session = undefined;
    await this.tpm?.close().catch(() => undefined);
    this.tpm = undefined;
    return generation;
  }

  private async flow(generation: number, onStep?: (step: string, detail?: string) => void): Promise<void> {
    try {
      this.setState('starting');
      const { config } = this;
      const idScope = requireIdScope(config, this.options.configPath);
      this.caPem = config.tls.extraCaFile ? await readFile(config.tls.extraCaFile, 'utf8') : undefined;
      this.tpm = new TpmClient(openTransport(parseTransport(config.tpm.transport)));
      const tpm = this.tpm;
      this.identity = await this.retryForever(generation, 'TPM unavailable', () =>
        ensureIdentity(tpm, { registrationId: config.provisioning.registrationId }));
      onStep?.('tpm', `TPM ready, registration id ${this.identity.registrationId}`);
      const stored = await readAssignment(config.stateDir);
      if (stored.status === 'invalid') this.log.warn('state.invalid', { reason: stored.reason, treatedAs: 'not provisioned' });
      const decision = onStep
        ? { action: 'provision' as const, reason: 'requested' }
        : decideAtStartup(config, idScope, this.identity.registrationId, stored);
      if (decision.action === 'useCached') {
        this.assignment = decision.assignment;
        this.log.info('provisioning.cached', { hub: decision.assignment.assignedHub, deviceId: decision.assignment.deviceId });
      } else {
        this.assignment = await this.provision(generation, idScope, decision.reason, onStep);
      }
      this.check(generation);
      this.connect(generation, this.assignment);
    } catch (err) {
      if (err instanceof Superseded) return;
      if (onStep) throw err;
      // Whatever stopped this flow (an unreadable CA file, say) may be mended later: try again.
      const delay = this.flowBackoff.next();
      this.log.error('daemon.flow_failed', { err, retryInMs: delay });
      this.setState('degraded', `${describeError(err)} (next try in ${Math.ceil(delay / 1000)} s)`);
      const retry = await this.sleep(delay, generation).then(() => true, () => false);
      if (retry) void this.flow(generation);
    }
  }

  private async provision(generation: number, idScope: string, reason: string,
    onStep?: (step: string, detail?: string) => void): Promise<Assignment> {
    const { config } = this;
    const identity = this.identity!;
    const backoff = new Backoff(this.options.backoff ?? DEFAULT_BACKOFF);
    for (;;) {
      this.setState('provisioning', reason);
      try {
        const result = await registerInChild({
          log: this.log, tpm: this.tpm!, registrationId: identity.registrationId, idScope, globalEndpoint: config.provisioning.globalEndpoint,
          ca: this.caPem, onStep: (step: ProvisionStep, detail?: string) => {
            this.log.info(`provisioning.${step}`, detail ? { detail } : {});
            onStep?.(step, stepWords(step, detail));
          },
        });
        this.check(generation);
        const assignment: Assignment = {
          ...result, registrationId: identity.registrationId, idScope,
          globalEndpoint: config.provisioning.globalEndpoint, assignedAt: new Date().toISOString(),
        };
        await writeAssignment(config.stateDir, assignment);
        return assignment;
      } catch (err) {
        if (err instanceof Superseded) throw err;
        this.check(generation);
        if (onStep) throw err; // a technician asked: tell them now rather than retry out of sight
        const delay = backoff.next(err instanceof DpsError ? err.retryAfterMs : undefined);
        this.log.warn('provisioning.failed', { err, retryInMs: delay });
        this.setState('degraded', `provisioning failed: ${describeError(err)} (next try in ${Math.ceil(delay / 1000)} s)`);
        await this.sleep(delay, generation);
      }
    }
  }

  private connect(generation: number, assignment: Assignment): void {
    this.setState('connecting', `to ${assignment.assignedHub}`);
    const session = new HubSession({
      tpm: this.tpm!, registrationId: assignment.registrationId, assignedHub: assignment.assignedHub,
      deviceId: assignment.deviceId, ca: this.caPem, log: this.log.child({ component: 'hub' }),
      keepAliveSeconds: this.options.keepAliveSeconds, tokenLifetimeSeconds: this.options.tokenLifetimeSeconds,
      tokenRenewalMarginSeconds: this.options.tokenRenewalMarginSeconds, backoff: this.options.backoff,
      onConnected: (client, twin) => this.features?.onConnected(client, twin),
    });
    this.session = session;
    session.on('connected', () => {
      if (generation !== this.generation) return;
      this.setState('ready', `connected to ${assignment.assignedHub} as ${assignment.deviceId}`);
      this.flowBackoff.reset();
      this.announceReady(`ready: ${assignment.deviceId} on ${assignment.assignedHub}`);
    });
    session.on('disconnected', (err) => {
      if (generation !== this.generation) return;
      this.features?.detach();
      this.setState('degraded', `hub unreachable: ${describeError(err)}`);
    });
    session.on('rejected', (err) => {
      if (generation !== this.generation) return;
      this.features?.detach();
      if (reprovisionOnRejection(this.config)) {
        this.log.warn('hub.rejected_reprovisioning', { err });
        void clearAssignment(this.config.stateDir).then(() => this.restartFlow());
      } else {
        this.setState('degraded', `the hub refused the device (${describeError(err)}) and reprovision is never`);
        const delay = new Backoff(this.options.backoff ?? DEFAULT_BACKOFF).next();
        void this.sleep(delay, generation).then(() => session.start(), () => undefined);
      }
    });
    session.start();
  }

  /** Commands, twin and telemetry on top of the session: created once, attached on every connect. */
  private createFeatures(): Promise<DeviceFeatures> {
    return DeviceFeatures.create({
      config: this.config,
      log: this.log,
      agentVersion: this.options.agentVersion ?? '0.0.0',
      identity: () => ({ ...this.status(), state: this.state }),
      tpmFacts: async () => {
        if (!this.tpm) return undefined;
        const facts = await readTpmFacts(this.tpm);
        return { manufacturer: facts.manufacturerName, firmware: facts.firmwareVersion };
      },
      endpoints: () => [
        ...(this.assignment ? [{ host: this.assignment.assignedHub, port: 8883 }] : []),
        { host: this.config.provisioning.globalEndpoint, port: 443 },
      ],
      reprovision: () => this.reprovisionNow(),
      restart: () => this.options.onRestartRequested?.(),
      hardeningSite: hardeningSiteFromEnv(),
      reboot: rebootSettingsFromEnv(),
    });
  }

  /** The reprovision command: forget the assignment, run the flow again and wait until connected. */
  private async reprovisionNow(): Promise<void> {
    this.log.info('daemon.reprovision_requested');
    await clearAssignment(this.config.stateDir);
    await this.restartFlow();
    await this.waitForReady(this.generation, 120_000);
  }

  private async onControl(request: ControlRequest, reply: (line: ControlReply) => void): Promise<void> {
    if (request.op === 'status') {
      reply({ event: 'status', ...this.status() });
      return;
    }
    // A technician asked for it: run one attempt in the open and report each step, then
    // hand back to the normal flow, which retries on its own if this attempt failed.
    const generation = await this.endFlow();
    try {
      await this.flow(generation, (step, detail) => reply({ event: 'step', step, message: detail ?? step }));
      await this.waitForReady(generation, 60_000);
    } catch (err) {
      if (this.generation === generation) void this.restartFlow();
      throw err;
    }
    reply({ event: 'step', step: 'connected', message: `connected to ${this.assignment?.assignedHub} as ${this.assignment?.deviceId}` });
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
        if (this.generation !== generation) done(new Error('superseded by another request'));
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

  private setState(state: DaemonState, reason?: string): void {
    if (this.state === 'stopping' && state !== 'stopping') return;
    if (state === this.state && reason === this.reason) return;
    this.log.info('state.changed', { from: this.state, to: state, reason });
    this.state = state;
    this.reason = reason;
    this.since = new Date();
    this.notifier.status(reason ? `${state}: ${reason}` : state);
    this.changes.emit('state', state);
  }

  private async retryForever<T>(generation: number, what: string, attempt: () => Promise<T>): Promise<T> {
    const backoff = new Backoff(this.options.backoff ?? DEFAULT_BACKOFF);
    for (;;) {
      try {
        return await attempt();
      } catch (err) {
        this.check(generation);
        const delay = backoff.next();
        this.log.warn('daemon.retrying', { what, err, retryInMs: delay });
        this.setState('degraded', `${what}: ${describeError(err)}`);
        await this.sleep(delay, generation);
      }
    }
  }

  private check(generation: number): void {
    if (generation !== this.generation) throw new Superseded();
  }

  private sleep(ms: number, generation: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        if (generation === this.generation) resolve();
        else reject(new Superseded());
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private wakeSleepers(): void {
    for (const wake of [...this.sleepers]) wake();
  }
}

function stepWords(step: ProvisionStep, detail?: string): string {
  switch (step) {
    case 'challenge': return 'DPS challenge received';
    case 'activated': return 'key activated in the TPM';
    case 'assigned': return `assigned to ${detail ?? 'a hub'}`;
  }
}
