import { createHash } from 'node:crypto';
import type { AllocationPolicy, Enrollment } from './enrollment.js';

/**
 * The IoT hub a registration goes to, by the two policies DPS offers that need no
 * outside input: `static` (the enrollment names its hub) and `hashed` (evenly weighted
 * distribution: a hash of the registration id picks among the enrollment's hubs, or
 * all linked hubs). An enrollment without a policy follows the service's default.
 */
export function chooseHub(enrollment: Enrollment, linkedHubs: readonly string[], defaultPolicy: AllocationPolicy): string {
  const named = enrollment.iotHubs?.length ? enrollment.iotHubs : enrollment.iotHubHostName ? [enrollment.iotHubHostName] : [];
  const candidates = named.length ? named : linkedHubs;
  if (!candidates.length) throw new Error('no IoT hub is linked to this provisioning service');
  const policy = enrollment.allocationPolicy ?? defaultPolicy;
  if (policy === 'static') return candidates[0]!;
  const digest = createHash('sha256').update(enrollment.registrationId).digest();
  return candidates[digest.readUInt32BE(0) % candidates.length]!;
}
