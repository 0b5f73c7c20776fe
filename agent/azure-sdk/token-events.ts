import type { EventEmitter } from 'node:events';

/**
 * TpmAuthenticationProvider emits `newTokenAvailable` when it signs its first token, while
 * the MQTT transport is still connecting with that very token; the transport defers the
 * event and, once connected, reconnects "to use the new token": every connect costs the
 * hub two CONNECTs (seen with the local hub's counters, and in the SDK's debug log as
 * `connected -> reconnecting (connected.updateSharedAccessSignature)`). This drops the
 * event until `live()` says the connection is up; renewals after that pass as they are.
 */
export function dropTokenEventsUntilLive(provider: EventEmitter, live: () => boolean): void {
  const emit = provider.emit.bind(provider);
  provider.emit = (event: string | symbol, ...args: unknown[]): boolean =>
    (event === 'newTokenAvailable' && !live() ? false : emit(event, ...args));
}
