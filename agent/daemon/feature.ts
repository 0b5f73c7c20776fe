import type { Client, Twin } from 'azure-iot-device';
import type { Logger } from '../log/logger.js';
import type { DesiredFeed } from '../twin/desired-feed.js';

/** What a feature is handed after every connect. */
export interface Connection {
  client: Client;
  twin: Twin;
  /** Desired-property patches, subscribed before the twin was fetched. */
  desired: DesiredFeed;
}

/**
 * One thing the device does on top of the hub session (commands, reported state, writable
 * properties, telemetry, …): started once with the daemon, attached to each new connection,
 * detached when the link drops, stopped with the daemon. Adding one is one object in the
 * daemon's list (agent/daemon/device-features.ts).
 */
export interface Feature {
  readonly name: string;
  start?(): void;
  stop?(): Promise<void>;
  /** Must not throw for long: the connection waits for every attach before it is `ready`. */
  attach(connection: Connection): void | Promise<void>;
  detach?(): void;
}

/** The features in order; one feature's failure is logged and never keeps the others from running. */
export class FeatureSet {
  constructor(private readonly features: readonly Feature[], private readonly log: Logger) {}

  start(): void {
    for (const feature of this.features) this.guard(feature, 'start', () => feature.start?.());
  }

  async stop(): Promise<void> {
    this.detach();
    for (const feature of this.features) {
      await Promise.resolve(feature.stop?.()).catch((err: unknown) => this.log.error('features.stop_failed', { feature: feature.name, err }));
    }
  }

  async attach(connection: Connection): Promise<void> {
    for (const feature of this.features) {
      try {
        await feature.attach(connection);
      } catch (err) {
        this.log.error('features.attach_failed', { feature: feature.name, err });
      }
    }
  }

  detach(): void {
    for (const feature of this.features) this.guard(feature, 'detach', () => feature.detach?.());
  }

  private guard(feature: Feature, step: string, run: () => void): void {
    try {
      run();
    } catch (err) {
      this.log.error(`features.${step}_failed`, { feature: feature.name, err });
    }
  }
}
