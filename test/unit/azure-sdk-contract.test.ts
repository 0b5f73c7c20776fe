import device from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import httpBase from 'azure-iot-http-base';
import provisioningHttp from 'azure-iot-provisioning-device-http';
import securityTpm from 'azure-iot-security-tpm';
import { describe, expect, it } from 'vitest';
import { provisioningCommon, sdkMqttBase, sdkWs } from '../../agent/azure-sdk/sdk-modules.js';
import { sdkClient, tpmProvider } from '../support/azure-sdk.js';

/**
 * Every private member of the Azure SDKs that a patch in agent/azure-sdk/ relies on, read
 * from the real packages, with the kind the patch expects. An SDK update that removes or
 * retypes one fails here, naming it, before any behaviour test or device notices.
 */
const member = (owner: unknown, name: string): unknown => (owner as Record<string, unknown> | undefined)?.[name];
const kind = (value: unknown): string => (value === null ? 'null' : typeof value);

/** [who relies on it, the member, its value, the kind expected]. */
function members(): [string, string, unknown, string][] {
  const transport = member(sdkClient(), '_transport');
  const provider = tpmProvider();
  const handle = member(securityTpm.TpmSecurityClient, '_idKeyPersistentHandle');
  return [
    ['client-transport.ts', 'Client._transport', transport, 'object'],
    ['method-requests.ts', 'Client._transport.emit', member(transport, 'emit'), 'function'],
    ['method-requests.ts', 'Client._transport.listenerCount', member(transport, 'listenerCount'), 'function'],
    ['desired-updates.ts', 'Client._transport.on', member(transport, 'on'), 'function'],
    ['desired-updates.ts', 'Client._transport.enableTwinDesiredPropertiesUpdates', member(transport, 'enableTwinDesiredPropertiesUpdates'), 'function'],
    ['twin-merges.ts', 'Twin.prototype._mergePatch', member(device.Twin.prototype, '_mergePatch'), 'function'],
    ['twin-merges.ts', 'Twin.prototype._onDesiredPropertiesUpdate', member(device.Twin.prototype, '_onDesiredPropertiesUpdate'), 'function'],
    ['token-clock.ts', 'TpmAuthenticationProvider._tokenValidTimeInSeconds', member(provider, '_tokenValidTimeInSeconds'), 'number'],
    ['token-clock.ts', 'TpmAuthenticationProvider._tokenRenewalMarginInSeconds', member(provider, '_tokenRenewalMarginInSeconds'), 'number'],
    ['token-clock.ts', 'azure-iot-common.anHourFromNow (the provisioning SDK\'s copy)', member(provisioningCommon(), 'anHourFromNow'), 'function'],
    ['token-events.ts', 'TpmAuthenticationProvider.emit', member(provider, 'emit'), 'function'],
    ['identity-key-handle.ts', 'TpmSecurityClient._idKeyPersistentHandle', handle, 'object'],
    ['identity-key-handle.ts', 'TpmSecurityClient._idKeyPersistentHandle.handle', member(handle, 'handle'), 'number'],
    ['identity-key-handle.ts', 'TpmSecurityClient._idKeyPersistentHandle.constructor', member(handle, 'constructor'), 'function'],
    ['dps-requests.ts', 'azure-iot-http-base Http.buildRequest', member(httpBase.Http.prototype, 'buildRequest'), 'function'],
    ['dps-requests.ts', 'azure-iot-http-base Http.setOptions', member(httpBase.Http.prototype, 'setOptions'), 'function'],
    ['websocket-packets.ts', 'ws.createWebSocketStream (the SDK\'s mqtt.js copy)', member(sdkWs(), 'createWebSocketStream'), 'function'],
  ];
}

describe('the Azure SDK members the agent\'s patches rely on', () => {
  it.each(members())('%s: %s', (_patch, _name, value, expected) => {
    expect(kind(value)).toBe(expected);
  });

  it('holds what the patches read: the SDK\'s defaults', () => {
    expect(member(member(securityTpm.TpmSecurityClient, '_idKeyPersistentHandle'), 'handle')).toBe(0x81000100);
    expect(member(tpmProvider(), '_tokenValidTimeInSeconds')).toBe(3600);
    // buildRequest(method, path, headers, host, options?, done): where the observer finds `done`.
    expect((member(httpBase.Http.prototype, 'buildRequest') as () => void).length).toBe(6);
  });

  it('dps-requests.ts: the provisioning HTTP transport sends through the HTTP layer it is given (Http._httpBase)', () => {
    const base = new httpBase.Http();
    expect(member(new provisioningHttp.Http(base as never), '_httpBase')).toBe(base);
  });

  it('hub-transport.ts: the MQTT transports connect through the MqttBase they are given (_mqtt), and it through the mqtt.js it is given (mqttProvider)', () => {
    const provider = { connect: () => undefined };
    const base = new (sdkMqttBase().MqttBase)(provider);
    expect(member(base, 'mqttProvider')).toBe(provider);
    for (const Transport of [deviceMqtt.Mqtt, deviceMqtt.MqttWs]) expect(member(new Transport(tpmProvider(), base), '_mqtt')).toBe(base);
  });
});
