import type { HubProtocolSetting } from '../config.js';
import type { HubFailureKind, PolicyClock } from './connection-policy.js';

/**
 * Which way the hub session travels, decided apart from when it is tried (the connection
 * policy's part): MQTT over TLS on 8883, or MQTT over WebSockets on 443. Free of I/O; the
 * flow asks before each connect and reports what happened. One "round" is one turn of the
 * connection policy: the first attempt, and at most one attempt of the other protocol right
 * after it, before the policy's backoff.
 *
 * | setting / situation                  | condition                                              | decision |
 * |--------------------------------------|--------------------------------------------------------|----------|
 * | `mqtt`                               |                                                        | 8883 only |
 * | `mqtt-ws`, or any setting with a proxy for the hub | (a proxy tunnels 443 only)               | WebSockets on 443 only |
 * | `auto`, nothing remembered           |                                                        | 8883 first, given MQTT_PROBE_MS to connect |
 * | `auto`, 8883 unreachable or too slow | WebSockets not tried yet in this round                 | WebSockets on 443 at once |
 * | `auto`, WebSockets unreachable       | 8883 not tried yet in this round                       | 8883 at once |
 * | `auto`, refused (CONNACK 5, 401, 404)|                                                        | no change: the other way would be refused too |
 * | `auto`, connected over WebSockets    | 8883 had failed                                        | remembered (state directory): later rounds and boots start with WebSockets |
 * | `auto`, WebSockets remembered        | MQTT_RETRY_MS (jittered ±25 %) since it was chosen      | 8883 tried once more first (with MQTT_PROBE_MS); failing, WebSockets again and the next try a period later |
 * | `auto`, connected over 8883          |                                                        | remembered: WebSockets forgotten |
 */
export type HubProtocol = 'mqtt' | 'mqtt-ws';

/** What was learnt of this network, kept across restarts (agent/state/hub-protocol-memory.ts). */
export interface ProtocolMemory {
  protocol: HubProtocol;
  /** Wall-clock ms when it was chosen. */
  since: number;
  /** WebSockets only: when 8883 is tried again (wall-clock ms). */
  retryMqttAt?: number;
}

export interface ProtocolPlan {
  protocol: HubProtocol;
  /** How long the attempt may take to connect; undefined: the session's own limit. */
  timeoutMs: number | undefined;
  /** Why this protocol, for logs and `status`. */
  reason: string;
}

export interface ProtocolSettings {
  setting: HubProtocolSetting;
  /** The hub goes through a proxy (network.proxy or https_proxy, and not in noProxy). */
  proxied: boolean;
  /** How long 8883 gets in `auto` before WebSockets are tried. */
  probeMs: number;
}

/** "Within a few seconds": TCP, TLS and CONNACK on a slow cellular link take well under this. */
export const MQTT_PROBE_MS = 10_000;
/** How often a board that fell back to WebSockets tries 8883 again (about daily, spread ±25 %). */
export const MQTT_RETRY_MS = 24 * 3_600_000;

export class HubProtocolChoice {
  private remembered: ProtocolMemory | undefined;
  private changed = false;
  private tried = new Set<HubProtocol>();
  private retrying = false;

  constructor(private settings: ProtocolSettings, memory: ProtocolMemory | undefined,
    private readonly clock: PolicyClock = { now: Date.now, random: Math.random }) {
    this.remembered = memory;
  }

  /** New settings (SIGHUP, a proxy set or removed); what was learnt stays. */
  update(settings: ProtocolSettings): void {
    this.settings = settings;
  }

  memory(): ProtocolMemory | undefined {
    return this.remembered;
  }

  /** The memory once it changed (to be written), and only once. */
  takeChange(): ProtocolMemory | undefined {
    if (!this.changed) return undefined;
    this.changed = false;
    return this.remembered;
  }

  /** The first attempt of a round. */
  plan(): ProtocolPlan {
    this.tried = new Set();
    this.retrying = false;
    const fixed = this.fixed();
    if (fixed) return this.attempt(fixed);
    const memory = this.remembered;
    const now = this.clock.now();
    if (memory?.protocol === 'mqtt-ws') {
      const retryAt = memory.retryMqttAt ?? 0;
      // A retry "more than a period away" means the wall clock went back since: due now.
      if (retryAt > now && retryAt - now <= MQTT_RETRY_MS * 1.25) {
        return this.attempt({ protocol: 'mqtt-ws', timeoutMs: undefined,
          reason: `8883 was unreachable (${iso(memory.since)}); 8883 is tried again after ${iso(retryAt)}` });
      }
      this.retrying = true;
      return this.attempt({ protocol: 'mqtt', timeoutMs: this.settings.probeMs, reason: `trying 8883 again (WebSockets since ${iso(memory.since)})` });
    }
    return this.attempt({ protocol: 'mqtt', timeoutMs: this.settings.probeMs, reason: 'auto: 8883 first' });
  }

  /** After a failed attempt: the other protocol to try at once, or undefined (the round is over). */
  failed(plan: ProtocolPlan, kind: HubFailureKind): ProtocolPlan | undefined {
    if (kind === 'refused' || this.fixed()) return undefined;
    if (plan.protocol === 'mqtt' && this.retrying) {
      // The periodic try failed: back to WebSockets, and the next try a period from now.
      this.retrying = false;
      this.remember({ protocol: 'mqtt-ws', since: this.remembered?.since ?? this.clock.now(), retryMqttAt: this.nextRetry() });
    }
    const other: HubProtocol = plan.protocol === 'mqtt' ? 'mqtt-ws' : 'mqtt';
    if (this.tried.has(other)) return undefined;
    return this.attempt(other === 'mqtt-ws'
      ? { protocol: 'mqtt-ws', timeoutMs: undefined, reason: `8883 could not be reached${plan.timeoutMs ? ` within ${plan.timeoutMs / 1000} s` : ''}: WebSockets on 443` }
      : { protocol: 'mqtt', timeoutMs: this.settings.probeMs, reason: 'WebSockets on 443 could not be reached: 8883' });
  }

  /** A connection worked over `protocol`: remembered in `auto` without a proxy. */
  connected(protocol: HubProtocol): void {
    this.retrying = false;
    if (this.fixed()) return;
    if (protocol === 'mqtt' && this.remembered?.protocol !== 'mqtt') this.remember({ protocol: 'mqtt', since: this.clock.now() });
    if (protocol === 'mqtt-ws' && this.remembered?.protocol !== 'mqtt-ws') {
      this.remember({ protocol: 'mqtt-ws', since: this.clock.now(), retryMqttAt: this.nextRetry() });
    }
  }

  /** The protocol the setting or a proxy imposes, with its reason; undefined in `auto` without a proxy. */
  private fixed(): ProtocolPlan | undefined {
    const { setting, proxied } = this.settings;
    if (setting === 'mqtt') return { protocol: 'mqtt', timeoutMs: undefined, reason: 'network.hubProtocol is mqtt' };
    if (setting === 'mqtt-ws') return { protocol: 'mqtt-ws', timeoutMs: undefined, reason: 'network.hubProtocol is mqtt-ws' };
    if (proxied) return { protocol: 'mqtt-ws', timeoutMs: undefined, reason: 'through the proxy, which tunnels 443 only' };
    return undefined;
  }

  private attempt(plan: ProtocolPlan): ProtocolPlan {
    this.tried.add(plan.protocol);
    return plan;
  }

  private remember(memory: ProtocolMemory): void {
    this.remembered = memory;
    this.changed = true;
  }

  private nextRetry(): number {
    return this.clock.now() + Math.floor(MQTT_RETRY_MS * (0.75 + this.clock.random() / 2));
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
