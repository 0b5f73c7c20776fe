/**
 * Fault knobs for agent tests: IoT Hub answers twin GET and reported PATCH with
 * `$iothub/twin/res/429/?$rid=` when its twin throttles (S1: 100 reads/s, 50 updates/s
 * hub-wide; Microsoft Learn, "IoT Hub quotas and throttling" and "Communicate with an IoT
 * hub using the MQTT protocol"). These make the next requests of one kind throttled on demand.
 */
export type TwinOperation = 'get' | 'patch';

export class HubFaults {
  private readonly twinThrottles: Record<TwinOperation, number> = { get: 0, patch: 0 };

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
    this.twinThrottles.get = 0;
    this.twinThrottles.patch = 0;
  }
}
