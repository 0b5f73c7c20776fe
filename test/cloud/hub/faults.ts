/**
 * Fault knobs for agent tests: IoT Hub answers twin GET and reported PATCH with
 * `$iothub/twin/res/429/?$rid=` when its twin throttles (S1: 100 reads/s, 50 updates/s
 * hub-wide; Microsoft Learn, "IoT Hub quotas and throttling" and "Communicate with an IoT
 * hub using the MQTT protocol"). These make the next requests of one kind throttled on demand.
 */
export type TwinOperation = 'get' | 'patch';

export class HubFaults {
  private readonly twinThrottles: Record<TwinOperation, number> = { get: 0, patch: 0 };
  private afterTwinGet: (() => void) | undefined;

  /**
   * Runs `action` right after the hub has answered the next twin GET: a change made in the
   * window between a device's GET and its next request, the race IoT Hub's reconnection
   * flow is about.
   */
  onNextTwinGet(action: () => void): void {
    this.afterTwinGet = action;
  }

  takeAfterTwinGet(): (() => void) | undefined {
    const action = this.afterTwinGet;
    this.afterTwinGet = undefined;
    return action;
  }

  /** The next `count` twin requests of `operation` are answered 429. */
  throttleTwin(operation: TwinOperation, count: number): void {
    this.twinThrottles[operation] += count;
  }

  /** Whether this twin request is to be throttled (and counts it off). */
  takeTwinThrottle(operation: TwinOperation): boolean {
    if (this.twinThrottles[operation] <= 0) return false;
    this.twinThrottles[operation]--;
    return true;
  }

  clear(): void {
    this.afterTwinGet = undefined;
    this.twinThrottles.get = 0;
    this.twinThrottles.patch = 0;
  }
}
