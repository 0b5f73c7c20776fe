import type device from 'azure-iot-device';

type Twin = InstanceType<typeof device.Twin>;

/**
 * Sends a reported-properties patch through azure-iot-device's Twin. The SDK adds `update` to
 * `properties.reported` at run time and types that dictionary `any`; this is its signature.
 */
export function updateReported(twin: Twin, patch: Record<string, unknown>): Promise<void> {
  const reported = twin.properties.reported as { update(patch: Record<string, unknown>, done: (err?: Error) => void): void };
  return new Promise((resolve, reject) => reported.update(patch, (err) => (err ? reject(err) : resolve())));
}
