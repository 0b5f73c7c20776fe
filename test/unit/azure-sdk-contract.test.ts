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

/** Where the members are read from; each made only inside the test that reads it. */
const OWNERS = {
  'Client': () => sdkClient(),
  'TpmAuthenticationProvider': () => tpmProvider(),
  'TpmSecurityClient': () => securityTpm.TpmSecurityClient,
  'Twin.prototype': () => device.Twin.prototype,
  'azure-iot-common': () => provisioningCommon(),
  'Http.prototype': () => httpBase.Http.prototype,
  'ws': () => sdkWs(),
};

/** [who relies on it, the member, its owner, the path to it from there, the kind expected]. */
const MEMBERS: [string, string, keyof typeof OWNERS, string[], string][] = [
  ['client-transport.ts', 'Client._transport', 'Client', ['_transport'], 'object'],
  ['method-requests.ts', 'Client._transport.emit', 'Client', ['_transport', 'emit'], 'function'],
  ['method-requests.ts', 'Client._transport.listenerCount', 'Client', ['_transport', 'listenerCount'], 'function'],
  ['desired-updates.ts', 'Client._transport.on', 'Client', ['_transport', 'on'], 'function'],
  ['desired-updates.ts', 'Client._transport.enableTwinDesiredPropertiesUpdates', 'Client', ['_transport', 'enableTwinDesiredPropertiesUpdates'], 'function'],
  ['twin-merges.ts', 'Twin.prototype._mergePatch', 'Twin.prototype', ['_mergePatch'], 'function'],
  ['twin-merges.ts', 'Twin.prototype._onDesiredPropertiesUpdate', 'Twin.prototype', ['_onDesiredPropertiesUpdate'], 'function'],
  ['token-clock.ts', 'TpmAuthenticationProvider._tokenValidTimeInSeconds', 'TpmAuthenticationProvider', ['_tokenValidTimeInSeconds'], 'number'],
  ['token-clock.ts', 'TpmAuthenticationProvider._tokenRenewalMarginInSeconds', 'TpmAuthenticationProvider', ['_tokenRenewalMarginInSeconds'], 'number'],
  ['token-clock.ts', 'azure-iot-common.anHourFromNow (the provisioning SDK\'s copy)', 'azure-iot-common', ['anHourFromNow'], 'function'],
  ['token-events.ts', 'TpmAuthenticationProvider.emit', 'TpmAuthenticationProvider', ['emit'], 'function'],
  ['identity-key-handle.ts', 'TpmSecurityClient._idKeyPersistentHandle', 'TpmSecurityClient', ['_idKeyPersistentHandle'], 'object'],
  ['identity-key-handle.ts', 'TpmSecurityClient._idKeyPersistentHandle.handle', 'TpmSecurityClient', ['_idKeyPersistentHandle', 'handle'], 'number'],
  ['identity-key-handle.ts', 'TpmSecurityClient._idKeyPersistentHandle.constructor', 'TpmSecurityClient', ['_idKeyPersistentHandle', 'constructor'], 'function'],
  ['dps-requests.ts', 'azure-iot-http-base Http.buildRequest', 'Http.prototype', ['buildRequest'], 'function'],
  ['dps-requests.ts', 'azure-iot-http-base Http.setOptions', 'Http.prototype', ['setOptions'], 'function'],
  ['websocket-packets.ts', 'ws.createWebSocketStream (the SDK\'s mqtt.js copy)', 'ws', ['createWebSocketStream'], 'function'],
];

describe('the Azure SDK members the agent\'s patches rely on', () => {
  it.each(MEMBERS)('%s: %s', (_patch, _name, owner, names, expected) => {
    const value = names.reduce((value: unknown, name) => member(value, name), OWNERS[owner]());
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
