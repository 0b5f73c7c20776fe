import type device from 'azure-iot-device';
import { transportOf } from './client-transport.js';
import { sanitizeTwinDocument } from './twin-merges.js';

type Client = InstanceType<typeof device.Client>;

/** The transport's event for a desired-property patch. */
export const DESIRED_PATCH_EVENT = 'twinDesiredPropertiesUpdate';

/**
 * Subscribes to desired-property updates now, before the twin is fetched, as the
 * reconnection order requires (the Twin object would subscribe only after its GET).
 */
export function enableDesiredUpdates(client: Client): Promise<void> {
  const transport = transportOf(client);
  return new Promise((resolve, reject) => transport.enableTwinDesiredPropertiesUpdates((err) => (err ? reject(err) : resolve())));
}

/** Every desired-property patch the transport receives, sanitised; returns the function that stops listening. */
export function onDesiredPatch(client: Client, listener: (patch: Record<string, unknown>) => void): () => void {
  const transport = transportOf(client);
  const handler = (patch: unknown) => {
    const clean = sanitizeTwinDocument(patch);
    if (typeof clean === 'object' && clean !== null && !Array.isArray(clean)) listener(clean as Record<string, unknown>);
  };
  transport.on(DESIRED_PATCH_EVENT, handler);
  return () => transport.off(DESIRED_PATCH_EVENT, handler);
}
