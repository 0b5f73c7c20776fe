import { loadConfig } from '../config.js';
import { runtimeOverrides } from '../runtime-overrides.js';
import { ensureIdentity } from '../tpm/identity.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { readTpmFacts } from '../tpm/tpm-facts.js';
import { formatTransport, parseTransport } from '../tpm/transport-spec.js';

export interface TpmInfoOptions {
  config?: string;
  tpm?: string;
  registrationId?: string;
  json?: boolean;
}

/** `iot-agent tpm info`: what a technician needs to enroll the device, and what TPM it has. */
export async function tpmInfo(options: TpmInfoOptions): Promise<void> {
  const config = await loadConfig(options.config);
  const spec = parseTransport(options.tpm ?? runtimeOverrides().tpmTransport ?? config.tpm.transport);
  const client = new TpmClient(openTransport(spec));
  try {
    const identity = await ensureIdentity(client, {
      registrationId: options.registrationId ?? config.provisioning.registrationId,
    });
    const facts = await readTpmFacts(client);
    const info = {
      transport: formatTransport(spec),
      registrationId: identity.registrationId,
      endorsementKey: identity.endorsementKey.toString('base64'),
      storageRootKey: identity.storageRootKey.toString('base64'),
      identityKeyPresent: identity.identityKeyPresent,
      keysCreated: identity.created,
      manufacturer: facts.manufacturer,
      manufacturerName: facts.manufacturerName,
      vendorString: facts.vendorString,
      firmwareVersion: facts.firmwareVersion,
      specLevel: facts.specLevel,
    };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(info)}\n`);
      return;
    }
    const rows: [string, string][] = [
      ['TPM', `${info.manufacturerName} (${info.manufacturer})${info.vendorString ? ` ${info.vendorString}` : ''}, firmware ${info.firmwareVersion}`],
      ['Spec', info.specLevel],
      ['Transport', info.transport],
      ['Registration id', info.registrationId],
      ['Identity key', info.identityKeyPresent ? 'present (0x81000100)' : 'absent: the device has not been provisioned'],
      ...(info.keysCreated.length ? [['Created now', `${info.keysCreated.join(' and ')} (persisted)`] as [string, string]] : []),
      ['Endorsement key', info.endorsementKey],
      ['Storage root key', info.storageRootKey],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join(''));
  } finally {
    await client.close();
  }
}
