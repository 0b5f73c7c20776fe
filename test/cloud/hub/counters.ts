/** What tests and QA read to see what the hub did. */
export interface HubCounters {
  registrations: number;
  connects: number;
  disconnects: number;
  /** SUBSCRIBE packets; a token renewal with a kept session adds none. */
  subscribes: number;
  refused: number;
  methodCalls: number;
  methodTimeouts: number;
  d2cMessages: number;
  c2dMessages: number;
  twinGets: number;
  reportedPatches: number;
  desiredPatches: number;
  /** D2C sends refused with 429 (the traffic-shaping backlog was full): each closed a connection. */
  d2cThrottled: number;
  /** D2C sends and connections refused because the daily quota is used up. */
  quotaRefusals: number;
  /** Twin requests answered 429 (HubFaults.throttleTwin). */
  twinThrottled: number;
  /** Reported patches refused with 400 (a limit broken, not JSON). */
  reportedRefused: number;
}

export function newCounters(): HubCounters {
  return {
    registrations: 0, connects: 0, disconnects: 0, subscribes: 0, refused: 0, methodCalls: 0, methodTimeouts: 0,
    d2cMessages: 0, c2dMessages: 0, twinGets: 0, reportedPatches: 0, desiredPatches: 0, d2cThrottled: 0, quotaRefusals: 0, twinThrottled: 0, reportedRefused: 0,
  };
}
