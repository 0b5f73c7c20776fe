import type { Client, Twin } from 'azure-iot-device';
import { caBundle, loadTrust } from '../check/trust.js';
import { requireIdScope, type AgentConfig } from '../config.js';
import { AgentError, describeError } from '../lib/errors.js';
import { HubConnectError, HubSession, PROTOCOL_WORDS } from '../hub/session.js';
import type { Logger } from '../log/logger.js';
import type { ProxySettings } from '../config/proxy-setting.js';
import { proxyFor, proxySettings } from '../network/proxy.js';
import type { ProxyTunnel } from '../network/proxy-agent.js';
import { decideAtStartup } from '../provisioning/decide.js';
import { readyIdentity, registerAssignment, type StepReporter } from '../provisioning/flow.js';
import { DpsError } from '../provisioning/dps-error.js';
import type { ConnectionPolicy, Decision, DpsFailure } from '../retry/connection-policy.js';
import { MQTT_PROBE_MS, type HubProtocolChoice, type ProtocolMemory, type ProtocolPlan } from '../retry/hub-protocol.js';
import { readAssignment, type Assignment } from '../state/assignment-store.js';
import type { ServiceClock } from '../time/service-clock.js';
import { fetchServiceDate } from '../time/service-date.js';
import type { DeviceIdentity } from '../tpm/identity.js';
import type { DesiredFeed } from '../twin/desired-feed.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { parseTransport } from '../config/transport-spec.js';
import type { Generations } from './generations.js';

export type FlowState = 'starting' | 'provisioning' | 'connecting' | 'ready' | 'degraded';

/** Timings a test may shorten; production uses the defaults of each module. */
export interface SessionTimings {
  keepAliveSeconds?: number;
  tokenLifetimeSeconds?: number;
  tokenRenewalMarginSeconds?: number;
  /** How long 8883 gets in network.hubProtocol auto before WebSockets are tried. */
  hubProbeMs?: number;
}

/** What the daemon lends to its flows. */
export interface FlowHost {
  readonly log: Logger;
  readonly policy: ConnectionPolicy;
  /** Which way the hub session travels (8883 or WebSockets on 443), learnt across flows. */
  readonly protocols: HubProtocolChoice;
  readonly clock: ServiceClock;
  readonly generations: Generations;
  readonly timings: SessionTimings;
  /** The TPM transport string in force (the config's, or the runtime override). */
  transport(config: AgentConfig): string;
  /** `failure`: what went wrong, in words, when the new state is one (remembered as the last error). */
  setState(state: FlowState, reason?: string, failure?: string): void;
  connected(assignment: Assignment): void;
  attach(client: Client, twin: Twin, desired: DesiredFeed): Promise<void>;
  detach(): void;
  /** Persists the policy's history after a registration. */
  remember(): Promise<void>;
  /** Persists what network.hubProtocol auto learnt. */
  rememberProtocol(memory: ProtocolMemory): Promise<void>;
}

/** How long a hub's Date header may take when a refusal might be the clock's fault. */
const CLOCK_PROBE_MS = 5_000;

/**
 * One generation of the daemon's work, from the TPM to a served hub session: what the
 * connection policy decides is carried out here, step by step, until a newer generation
 * (reload, re-provisioning, stop) supersedes it.
 */
export class ConnectionFlow {
  tpm: TpmClient | undefined;
  identity: DeviceIdentity | undefined;
  assignment: Assignment | undefined;
  session: HubSession | undefined;
  /** The hub attempt in progress or connected: its protocol and why. */
  route: ProtocolPlan | undefined;
  /** The proxy settings in force (network.proxy, or the environment's). */
  proxies: ProxySettings | undefined;
  private tunnel: ProxyTunnel | undefined;
  /** The proxy agent's module, loaded only on a board with a proxy. */
  private tunnels: typeof import('../network/proxy-agent.js') | undefined;
  /** The CAs to trust (the system's plus tls.extraCaFile), as PEM and as a list; undefined: Node's defaults. */
  private ca: string | undefined;
  private caList: string[] | undefined;

  constructor(private readonly host: FlowHost, private readonly config: AgentConfig, readonly generation: number,
    private readonly configPath: string | undefined) {}

  /** The daemon on its own (service mode): the cache if valid, else DPS; then the hub, for ever. */
  async run(): Promise<void> {
    const { host } = this;
    for (;;) {
      try {
        await this.prepare();
        const idScope = requireIdScope(this.config, this.configPath);
        const stored = await readAssignment(this.config.stateDir);
        if (stored.status === 'invalid') host.log.warn('state.invalid', { reason: stored.reason, treatedAs: 'not provisioned' });
        const decision = decideAtStartup(this.config, idScope, this.identity!.registrationId, stored);
        if (decision.action === 'useCached') host.log.info('provisioning.cached', { hub: decision.assignment.assignedHub, deviceId: decision.assignment.deviceId });
        const assignment = decision.action === 'useCached' ? decision.assignment : await this.provisionUntilDone(decision.reason, undefined);
        await this.serve(assignment);
      } catch (err) {
        // Superseded, or ended by what superseded it (a stop closes the TPM under a step).
        if (host.generations.value !== this.generation) return;
        // Whatever stopped this flow (the TPM, an unreadable CA file) may be mended later.
        const delay = host.policy.flowFailed();
        host.log.error('daemon.flow_failed', { err, retryInMs: delay });
        host.setState('degraded', `${describeError(err)} (next try in ${inWords(delay)})`, describeError(err));
        await this.closeTpm();
        // A newer flow ends the sleep; the next round's first check returns.
        await this.sleep(delay).catch(() => undefined);
      }
    }
  }

  /**
   * A person asked (the reprovision command, `iot-agent provision` through the daemon):
   * one registration in the open, keeping `fallback` until DPS has answered. Resolves with
   * the new assignment once it is served; on failure the device goes back to the fallback
   * hub (or to the normal flow) and the error goes to the person.
   */
  async reprovision(fallback: Assignment | undefined, onStep?: StepReporter): Promise<Assignment> {
    const { host } = this;
    let assignment: Assignment;
    try {
      await this.prepare(onStep);
      host.setState('provisioning', 'requested');
      assignment = await this.register(fallback, onStep);
    } catch (err) {
      // Superseded, or ended by what superseded it (a stop ends the registration under way): not DPS's failure.
      this.check();
      const decision = host.policy.dpsFailed(dpsFailure(err), fallback !== undefined);
      host.log.warn('provisioning.failed', { err, then: decision.action, reason: decision.reason });
      void (fallback ? this.serveForever(fallback) : this.run());
      throw err;
    }
    void this.serveForever(assignment);
    return assignment;
  }

  async stop(): Promise<void> {
    await this.session?.stop();
    this.session = undefined;
    await this.closeTpm();
  }

  /** The TPM and its identity, and the CA file: retried by the caller (run) or told (reprovision). */
  private async prepare(onStep?: StepReporter): Promise<void> {
    const { config, host } = this;
    this.check();
    host.setState('starting');
    const trust = await loadTrust(config.tls.extraCaFile);
    if (!trust.ok) throw new AgentError(trust.problem, { hint: trust.hint });
    this.caList = trust.ca;
    this.ca = caBundle(trust);
    // A proxy URL that cannot be used (from the environment: the config's is checked on load) stops the flow with its reason.
    this.proxies = proxySettings(config.network);
    this.tunnels = this.proxies.proxy ? await import('../network/proxy-agent.js') : undefined;
    this.tpm ??= new TpmClient(openTransport(parseTransport(host.transport(config))));
    const tpm = this.tpm;
    this.identity = await readyIdentity(tpm, config, onStep).catch((err: unknown) => {
      throw new AgentError('TPM unavailable', { cause: err, hint: err instanceof AgentError ? err.hint : undefined });
    });
    this.check();
  }

  /** DPS until it assigns, or back to `fallback` when it fails and there is one. */
  private async provisionUntilDone(reason: string, fallback: Assignment | undefined): Promise<Assignment> {
    const { host } = this;
    for (;;) {
      host.setState('provisioning', reason);
      try {
        return await this.register(fallback);
      } catch (err) {
        this.check(); // as in reprovision
        const decision = host.policy.dpsFailed(dpsFailure(err), fallback !== undefined);
        const operatorMustAct = host.policy.view().operatorMustAct;
        host.log.warn('provisioning.failed', { err, then: decision.action, retryInMs: decision.delayMs, operatorMustAct, reason: decision.reason });
        if (decision.action === 'fallback') return fallback!;
        const failure = `provisioning failed: ${describeError(err)}`;
        host.setState('degraded', `${failure} (${operatorMustAct ? 'an operator must act; ' : ''}next try in ${inWords(decision.delayMs)})`, failure);
        await this.sleep(decision.delayMs);
      }
    }
  }

  private async register(fallback: Assignment | undefined, onStep?: StepReporter): Promise<Assignment> {
    const { host, config } = this;
    const assignment = await registerAssignment({
      tpm: this.tpm!, config, idScope: requireIdScope(config, this.configPath), registrationId: this.identity!.registrationId,
      ca: this.ca, current: fallback, clock: host.clock, onStep, log: host.log,
    });
    this.check();
    host.policy.dpsAssigned();
    await host.remember().catch((err: unknown) => host.log.warn('state.history_not_saved', { err }));
    return assignment;
  }

  /** Serves `assignment`; should that ever stop for another reason than a newer flow, the normal flow takes over. */
  private async serveForever(assignment: Assignment): Promise<void> {
    try {
      await this.serve(assignment);
    } catch (err) {
      if (this.host.generations.value !== this.generation) return; // as in run()
      this.host.log.error('daemon.flow_failed', { err });
      await this.run();
    }
  }

  /** Connects to the hub of `first` and keeps the session, doing what the policy decides after each failure. */
  private async serve(first: Assignment): Promise<never> {
    const { host } = this;
    let assignment = first;
    let session = this.newSession(assignment);
    let plan: ProtocolPlan | undefined;
    for (;;) {
      this.check();
      this.assignment = assignment;
      plan ??= host.protocols.plan();
      this.route = plan;
      host.setState('connecting', `to ${assignment.assignedHub} ${PROTOCOL_WORDS[plan.protocol]}${this.tunnel && plan.protocol === 'mqtt-ws' ? ` through the proxy ${this.tunnel.proxy.display}` : ''}`);
      let decision: Decision;
      try {
        await session.connect(plan);
        this.check();
        host.protocols.connected(plan.protocol);
        await this.rememberProtocol();
        host.policy.hubConnected();
        host.connected(assignment);
        const lost = await host.generations.until<Error>(this.generation, (done) => {
          session.once('lost', done);
          return () => session.off('lost', done);
        });
        host.detach();
        decision = host.policy.hubLost();
        const failure = `hub connection lost: ${describeError(lost)}`;
        host.setState('degraded', `${failure} (reconnecting in ${inWords(decision.delayMs)})`, failure);
      } catch (err) {
        this.check(); // a stop or a newer flow ends the attempt: no failure of the hub's
        host.detach();
        const kind = err instanceof HubConnectError ? err.kind : 'unreachable';
        if (kind === 'refused' && await this.clockWasWrong(assignment)) continue;
        const other = host.protocols.failed(plan, kind);
        await this.rememberProtocol();
        if (other) {
          host.log.warn('hub.protocol_fallback', { hub: assignment.assignedHub, from: plan.protocol, to: other.protocol, reason: other.reason, err });
          plan = other;
          continue;
        }
        decision = host.policy.hubFailed(kind);
        host.log.warn(kind === 'refused' ? 'hub.rejected' : 'hub.unreachable', { hub: assignment.assignedHub, err, then: decision.action, retryInMs: decision.delayMs });
        const failure = `${kind === 'refused' ? 'the hub refused the device' : 'hub unreachable'}: ${describeError(err)}`;
        host.setState('degraded', `${failure}${decision.action === 'reprovision' ? ' (asking DPS again)' : ` (next try in ${inWords(decision.delayMs)})`}`, failure);
      }
      if (decision.action === 'reprovision') {
        await session.stop();
        // A new session either way: the old one is stopped, and a new assignment needs its own.
        assignment = await this.provisionUntilDone(decision.reason, assignment);
        session = this.newSession(assignment);
        plan = undefined;
        continue;
      }
      await this.sleep(decision.delayMs);
      plan = undefined;
    }
  }

  /** Writes what the protocol choice learnt, when it learnt something; a failure to write only costs one probe at the next boot. */
  private async rememberProtocol(): Promise<void> {
    const memory = this.host.protocols.takeChange();
    if (!memory) return;
    this.host.log.info('hub.protocol_learnt', { protocol: memory.protocol, retryMqttAfter: memory.retryMqttAt && new Date(memory.retryMqttAt).toISOString() });
    await this.host.rememberProtocol(memory).catch((err: unknown) => this.host.log.warn('state.hub_protocol_not_saved', { err }));
  }

  private newSession(assignment: Assignment): HubSession {
    const { host, config } = this;
    const proxy = this.proxies && proxyFor(this.proxies, assignment.assignedHub, 443);
    // The proxy module is loaded whenever a proxy is set (prepare).
    this.tunnel = proxy ? new this.tunnels!.ProxyTunnel(proxy) : undefined;
    host.protocols.update({ setting: config.network.hubProtocol, proxied: proxy !== undefined, probeMs: host.timings.hubProbeMs ?? MQTT_PROBE_MS });
    const session = new HubSession({
      tpm: this.tpm!, target: assignment, ca: this.ca, log: host.log.child({ component: 'hub' }), tunnel: this.tunnel,
      ...host.timings, clockCorrectionMs: () => host.clock.correctionMs(),
      onConnected: (client, twin, desired) => host.attach(client, twin, desired),
    });
    this.session = session;
    return session;
  }

  /**
   * A refused token may only be the board's clock: asks the hub for its time, and when the
   * correction changed, signs again at once instead of counting a refusal.
   */
  private async clockWasWrong(assignment: Assignment): Promise<boolean> {
    const { clock, log } = this.host;
    const before = clock.correctionMs();
    try {
      const seen = await fetchServiceDate(assignment.assignedHub, 443, this.caList, CLOCK_PROBE_MS, this.tunnel?.agent);
      clock.observe(seen.date, seen.sentAt, seen.receivedAt);
    } catch (err) {
      log.debug('clock.probe_failed', { hub: assignment.assignedHub, err });
      return false;
    }
    const after = clock.correctionMs();
    if (Math.abs(after - before) < 60_000) return false;
    log.warn('clock.corrected', { offsetMs: clock.offsetMs(), signingWith: 'the hub\'s time', reason: 'the hub refused a token signed with the local clock' });
    return true;
  }

  private async closeTpm(): Promise<void> {
    await this.tpm?.close().catch(() => undefined);
    this.tpm = undefined;
  }

  private check(): void {
    this.host.generations.check(this.generation);
  }

  private sleep(ms: number): Promise<void> {
    return this.host.generations.sleep(ms, this.generation);
  }
}

/** What the policy needs to know of a failed DPS attempt. */
export function dpsFailure(err: unknown): DpsFailure {
  if (!(err instanceof DpsError)) return { retryable: true };
  const refused = err.httpStatus === 401 || err.httpStatus === 403 || err.httpStatus === 404;
  // A refusal may be an enrollment on its way: the policy slows down after a few in a row.
  return { retryable: err.retryable, retryAfterMs: err.retryAfterMs, refused, operatorMustAct: err.operatorMustAct && !refused };
}

/** A delay as a person reads it: seconds, minutes, or hours with one decimal. */
export function inWords(ms: number): string {
  if (ms < 90_000) return `${Math.ceil(ms / 1000)} s`;
  if (ms < 90 * 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
