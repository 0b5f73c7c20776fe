/**
 * Device-to-cloud messages the hub received, kept in memory for tests and QA to
 * query (IoT Hub would route them to Event Hubs). Bounded: the oldest go first.
 */
export interface D2cMessage {
  /** Arrival order, from 1; `since` queries use it. */
  sequence: number;
  deviceId: string;
  enqueuedTime: string;
  body: Buffer;
  /** System properties without their `$.` prefix: mid, cid, ct, ce, … */
  systemProperties: Record<string, string>;
  properties: Record<string, string>;
}

export class D2cLog {
  private readonly messages: D2cMessage[] = [];
  private sequence = 0;

  constructor(private readonly capacity = 10_000) {}

  add(message: Omit<D2cMessage, 'sequence' | 'enqueuedTime'>): D2cMessage {
    const stored: D2cMessage = { ...message, sequence: ++this.sequence, enqueuedTime: new Date().toISOString() };
    this.messages.push(stored);
    if (this.messages.length > this.capacity) this.messages.splice(0, this.messages.length - this.capacity);
    return stored;
  }

  list(filter: { deviceId?: string; since?: number } = {}): D2cMessage[] {
    return this.messages.filter((m) => (filter.deviceId === undefined || m.deviceId === filter.deviceId)
      && (filter.since === undefined || m.sequence > filter.since));
  }
}
