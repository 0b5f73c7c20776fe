/**
 * The Azure SDK's plain sample flow, the baseline for `npm run bench -- agent`: provision
 * with TPM attestation on every start, then connect with the TPM authentication provider.
 * Only the TPM transport (the agent's, since the sample's device is /dev/tpm0) and the CA
 * differ from the SDK samples. Prints `connected <rss bytes>` and exits.
 * Usage: node dist/bench/sdk-sample-flow.js <transport> <provisioning host> <id scope> <ca file>
 */
import { readFileSync } from 'node:fs';
import device from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import provisioningDevice from 'azure-iot-provisioning-device';
import securityTpm from 'azure-iot-security-tpm';
import { openTransport } from '../agent/tpm/open-transport.js';
import { TpmClient } from '../agent/tpm/tpm-client.js';
import { parseTransport } from '../agent/config/transport-spec.js';
import { provisioningTransport } from '../test/cloud/dps/sdk-clients.js';

const [transport, host, idScope, caFile] = process.argv.slice(2);
if (!transport || !host || !idScope || !caFile) throw new Error('usage: sdk-sample-flow.js <transport> <host> <idScope> <caFile>');
const ca = readFileSync(caFile, 'utf8');
const tpm = new TpmClient(openTransport(parseTransport(transport)));
const security = new securityTpm.TpmSecurityClient(undefined, tpm.sdkTpm());
const result = await new Promise<{ registrationState: { assignedHub: string; deviceId: string } }>((resolve, reject) =>
  void provisioningDevice.ProvisioningDeviceClient.create(host, idScope, provisioningTransport(ca), security)
    .register((err?: Error, res?: unknown) => (err ? reject(err) : resolve(res as never))));
const { assignedHub, deviceId } = result.registrationState;
const client = device.Client.fromAuthenticationProvider(
  securityTpm.TpmAuthenticationProvider.fromTpmSecurityClient(deviceId, assignedHub, security), deviceMqtt.Mqtt);
await client.setOptions({ ca });
await client.open();
process.stdout.write(`connected ${process.memoryUsage().rss}\n`);
await client.close();
await tpm.close();
process.exit(0);
