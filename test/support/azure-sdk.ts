import device from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import securityTpm from 'azure-iot-security-tpm';

/** A real MQTT client of azure-iot-device, never connected (its hub name does not resolve). */
export function sdkClient(): InstanceType<typeof device.Client> {
  const client = device.Client.fromConnectionString('HostName=hub.invalid;DeviceId=d1;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAA==', deviceMqtt.Mqtt);
  client.on('error', () => undefined);
  return client;
}

/** A real TPM authentication provider of azure-iot-security-tpm, over no TPM (nothing here signs). */
export function tpmProvider() {
  const security = new securityTpm.TpmSecurityClient('reg-1', {});
  return securityTpm.TpmAuthenticationProvider.fromTpmSecurityClient('d1', 'hub.invalid', security);
}
