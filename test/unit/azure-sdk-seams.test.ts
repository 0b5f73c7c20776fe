import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import securityTpm from 'azure-iot-security-tpm';
import { afterEach, describe, expect, it } from 'vitest';
import { identityKeyHandleInUse, useIdentityKeyHandle } from '../../agent/azure-sdk/identity-key-handle.js';
import { sdkMqtt, sdkMqttBase, sdkMqttPacket, sdkWs } from '../../agent/azure-sdk/sdk-modules.js';
import { setHubTokenTiming, signDpsTokensWith } from '../../agent/azure-sdk/token-clock.js';
import { dropTokenEventsUntilLive } from '../../agent/azure-sdk/token-events.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';

/** The azure-iot-common that the provisioning SDK loads (its own copy), found independently of the agent. */
function provisioningSdkCommon(): { anHourFromNow(): number } {
  const require = createRequire(import.meta.url);
  return createRequire(require.resolve('azure-iot-provisioning-device'))('azure-iot-common') as { anHourFromNow(): number };
}

/** A module as the device SDK's MQTT stack loads it, found independently of the agent: `chain` from azure-iot-device-mqtt down. */
function deviceSdkCopy(...chain: string[]): unknown {
  let from = createRequire(import.meta.url).resolve('azure-iot-device-mqtt');
  for (const id of chain.slice(0, -1)) from = createRequire(from).resolve(id);
  return createRequire(from)(chain[chain.length - 1]!);
}

describe('the module copies the agent patches', () => {
  it('are the very ones the device SDK\'s MQTT transport loads: its MqttBase, its mqtt.js, and that mqtt.js\'s ws and mqtt-packet', () => {
    expect(sdkMqttBase()).toBe(deviceSdkCopy('azure-iot-mqtt-base'));
    expect(sdkMqtt()).toBe(deviceSdkCopy('azure-iot-mqtt-base', 'mqtt'));
    expect(sdkWs()).toBe(deviceSdkCopy('azure-iot-mqtt-base', 'mqtt', 'ws'));
    expect(sdkMqttPacket()).toBe(deviceSdkCopy('azure-iot-mqtt-base', 'mqtt', 'mqtt-packet'));
  });

  it('include the packet writer\'s number cache switch that the hub session turns off', () => {
    expect(typeof sdkMqttPacket().writeToStream.cacheNumbers).toBe('boolean');
  });
});

describe('hub token timing', () => {
  it('moves the expiry and the renewal margin by the clock correction, in whole seconds, keeping the renewal period', () => {
    const provider = { _tokenValidTimeInSeconds: 3600, _tokenRenewalMarginInSeconds: 900 };
    setHubTokenTiming(provider, 3600, 900, 2 * 3_600_000 + 400);
    expect(provider).toEqual({ _tokenValidTimeInSeconds: 3600 + 7200, _tokenRenewalMarginInSeconds: 900 + 7200 });
    setHubTokenTiming(provider, 3600, 900, 1_500);
    expect(provider).toEqual({ _tokenValidTimeInSeconds: 3602, _tokenRenewalMarginInSeconds: 902 });
  });

  it('shortens both for a board whose clock is ahead', () => {
    const provider = {};
    setHubTokenTiming(provider, 3600, 900, -600_000);
    expect(provider).toEqual({ _tokenValidTimeInSeconds: 3000, _tokenRenewalMarginInSeconds: 300 });
  });

  it('gives the SDK\'s own timing without a correction', () => {
    const provider = {};
    setHubTokenTiming(provider, 3600, 900, 0);
    expect(provider).toEqual({ _tokenValidTimeInSeconds: 3600, _tokenRenewalMarginInSeconds: 900 });
  });
});

describe('DPS registration tokens', () => {
  it('expire an hour after the service time, rounded up to the second, in the provisioning SDK\'s copy of azure-iot-common', () => {
    const serviceTime = Date.parse('2026-12-01T12:00:00.250Z');
    signDpsTokensWith(() => serviceTime);
    expect(provisioningSdkCommon().anHourFromNow()).toBe(Math.floor(serviceTime / 1000) + 1 + 3600);
  });

  it('follow a replaced clock', () => {
    signDpsTokensWith(() => Date.parse('2026-12-01T12:00:00.000Z'));
    signDpsTokensWith(() => Date.parse('2030-01-01T00:00:00.000Z'));
    expect(provisioningSdkCommon().anHourFromNow()).toBe(Date.parse('2030-01-01T01:00:00.000Z') / 1000);
  });
});

describe('the token event of the first connect', () => {
  it('is dropped while the connection is not up yet', () => {
    const provider = new EventEmitter();
    const heard: unknown[] = [];
    provider.on('newTokenAvailable', (token) => heard.push(token));
    dropTokenEventsUntilLive(provider, () => false);
    expect(provider.emit('newTokenAvailable', 'sas-1')).toBe(false);
    expect(heard).toEqual([]);
  });

  it('passes once the connection is up (a renewal), with its token', () => {
    const provider = new EventEmitter();
    const heard: unknown[] = [];
    provider.on('newTokenAvailable', (token) => heard.push(token));
    let live = false;
    dropTokenEventsUntilLive(provider, () => live);
    provider.emit('newTokenAvailable', 'sas-1');
    live = true;
    expect(provider.emit('newTokenAvailable', 'sas-2')).toBe(true);
    expect(heard).toEqual(['sas-2']);
  });

  it('leaves every other event alone', () => {
    const provider = new EventEmitter();
    const heard: unknown[] = [];
    provider.on('error', (err, more) => heard.push(err, more));
    dropTokenEventsUntilLive(provider, () => false);
    expect(provider.emit('error', 'e', 2)).toBe(true);
    expect(provider.emit('unheard')).toBe(false);
    expect(heard).toEqual(['e', 2]);
  });
});

describe('the identity key handle the SDK signs with', () => {
  afterEach(() => useIdentityKeyHandle(IDENTITY_KEY_SLOTS[0]));

  it('is the SDK\'s own 0x81000100 until told otherwise', () => {
    expect(identityKeyHandleInUse()).toBe(0x81000100);
  });

  it('moves to the other slot and back, as a handle object of the SDK\'s own tss.js', () => {
    const statics = securityTpm.TpmSecurityClient as unknown as { _idKeyPersistentHandle: object };
    const sdkHandleClass = statics._idKeyPersistentHandle.constructor;
    useIdentityKeyHandle(IDENTITY_KEY_SLOTS[1]);
    expect(identityKeyHandleInUse()).toBe(0x81000101);
    expect(statics._idKeyPersistentHandle).toBeInstanceOf(sdkHandleClass);
    useIdentityKeyHandle(IDENTITY_KEY_SLOTS[0]);
    expect(identityKeyHandleInUse()).toBe(0x81000100);
  });
});
