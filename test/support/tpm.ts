import { randomBytes } from 'node:crypto';
import securityTpm from 'azure-iot-security-tpm';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import type { TransportOptions } from '../../agent/tpm/transport.js';
import { buildActivationBlob } from '../cloud/dps/activation-blob.js';
import { fromCallback } from './callback.js';

export function clientFor(transport: string, options: TransportOptions = {}): TpmClient {
  return new TpmClient(openTransport(parseTransport(transport), options));
}

/**
 * What DPS hands a TPM it attested, without DPS and its polling: a random hub key in an
 * activation blob for the TPM's EK and SRK, activated into the SDK's identity key handle.
 * Returns the key, for the hub's registry.
 */
export async function activateHubKey(tpm: TpmClient): Promise<Buffer> {
  const security = new securityTpm.TpmSecurityClient(undefined, tpm.sdkTpm());
  const ek = await fromCallback<Buffer>((cb) => security.getEndorsementKey(cb));
  const srk = await fromCallback<Buffer>((cb) => security.getStorageRootKey(cb));
  const key = randomBytes(32);
  await fromCallback((cb) => security.activateIdentityKey(buildActivationBlob(ek, srk, key), cb));
  return key;
}
