import { desiredVersion } from './writable.js';

export interface DesiredHandlers {
  /** The whole desired document, fetched after subscribing. */
  full(doc: Record<string, unknown>): void;
  /** A patch newer than that document. */
  patch(doc: Record<string, unknown>): void;
}

/** Patches kept while nobody consumes the feed yet; more means something is badly wrong, and the oldest go. */
const MAX_BUFFERED = 100;

/**
 * Desired properties in the order IoT Hub's device reconnection flow calls for (Microsoft
 * Learn, "Understand and use device twins", Device reconnection flow): subscribe to patches,
 * then fetch the whole document, and ignore every patch whose `$version` is not above the
 * document's. Patches that arrive between the subscription and `start` wait here, so none
 * is lost to the race.
 */
export class DesiredFeed {
  private buffered: Record<string, unknown>[] = [];
  private handlers: DesiredHandlers | undefined;
  private baseVersion = 0;

  push(patch: Record<string, unknown>): void {
    if (this.handlers) {
      this.deliver(patch);
      return;
    }
    this.buffered.push(patch);
    if (this.buffered.length > MAX_BUFFERED) this.buffered.shift();
  }

  start(full: Record<string, unknown>, handlers: DesiredHandlers): void {
    this.baseVersion = desiredVersion(full);
    this.handlers = handlers;
    handlers.full(full);
    for (const patch of this.buffered.splice(0)) this.deliver(patch);
  }

  private deliver(patch: Record<string, unknown>): void {
    const version = desiredVersion(patch);
    if (version !== 0 && version <= this.baseVersion) return;
    this.handlers!.patch(patch);
  }
}
