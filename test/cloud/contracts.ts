/**
 * What the local DPS and the local IoT Hub agree on. DPS assigns a device to one of its
 * linked hubs and registers it there with the fresh key it put into the final
 * activation blob; the hub then accepts SAS tokens signed with that key.
 */
export interface HubDeviceRegistration {
  deviceId: string;
  registrationId: string;
  /** The 32-byte HMAC key the device's TPM now holds as its identity key. */
  primaryKey: Buffer;
  /** Desired properties from the enrollment's initial twin, if any. */
  initialTwin?: { tags?: Record<string, unknown>; properties?: { desired?: Record<string, unknown> } };
}

export interface LinkedHub {
  /** The host name devices connect to (also the name in DPS's assignedHub). */
  readonly hostName: string;
  registerDevice(registration: HubDeviceRegistration): Promise<void>;
}
