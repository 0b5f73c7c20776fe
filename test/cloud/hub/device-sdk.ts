import deviceSdk from 'azure-iot-device';
import mqttTransport from 'azure-iot-device-mqtt';

/**
 * An unmodified azure-iot-device client over MQTT for a software-key device of the
 * local hub. The CA goes in through the SDK's own `setOptions({ ca })` (a PEM file
 * path or PEM text); every setOptions call replaces the transport's options, so the
 * CA and any token renewal settings must travel in the same call.
 */
export async function openDevice(hub: { deviceConnectionString(deviceId: string): string; caCertPath: string }, deviceId: string,
  tokenRenewal?: { tokenValidTimeInSeconds: number; tokenRenewalMarginInSeconds: number }): Promise<deviceSdk.Client> {
  const client = deviceSdk.Client.fromConnectionString(hub.deviceConnectionString(deviceId), mqttTransport.Mqtt);
  await client.setOptions({ ca: hub.caCertPath, ...(tokenRenewal ? { tokenRenewal } : {}) });
  await client.open();
  return client;
}
