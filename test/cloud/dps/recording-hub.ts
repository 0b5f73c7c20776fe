import type { HubDeviceRegistration, LinkedHub } from '../contracts.js';

/** A LinkedHub that only records what DPS registered on it: the real hub is test/cloud/hub/. */
export class RecordingHub implements LinkedHub {
  readonly registrations: HubDeviceRegistration[] = [];
  /** Set to make the next registrations fail, as an unreachable hub would. */
  failWith: Error | undefined;

  constructor(readonly hostName: string) {}

  registerDevice(registration: HubDeviceRegistration): Promise<void> {
    if (this.failWith) return Promise.reject(this.failWith);
    this.registrations.push(registration);
    return Promise.resolve();
  }

  last(): HubDeviceRegistration | undefined {
    return this.registrations.at(-1);
  }
}
