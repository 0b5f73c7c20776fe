import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { authenticateDevice, deviceIdFromUsername } from '../cloud/hub/device-auth.js';
import { SimHubError } from '../cloud/errors.js';
import type { DeviceRecord } from '../cloud/hub/registry.js';
import { checkServiceAuthorization } from '../cloud/hub/service-auth.js';
import { emptyTwin } from '../cloud/hub/twin.js';
import { createSas } from '../cloud/sas.js';

const host = '127.70.1.2';
const key = randomBytes(32);
const now = 1_800_000_000;
let device: DeviceRecord;
beforeAll(() => {
  device = {
    deviceId: 'dev', registrationId: 'dev', primaryKey: key.toString('base64'), secondaryKey: randomBytes(32).toString('base64'),
    status: 'enabled', generationId: '1', identityVersion: 1, createdTime: '', twin: emptyTwin(),
  };
});
const lookup = (id: string) => (id === 'dev' ? device : undefined);
const user = `${host}/dev/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4`;
const token = (resource = `${host}/devices/dev`, expiry = now + 60, k = key) => Buffer.from(createSas(k, resource, expiry));

describe('device CONNECT authentication', () => {
  it('accepts the SDK\'s username with a token signed by the device key', () => {
    expect(authenticateDevice(host, 'dev', user, token(), lookup, now)).toEqual({ ok: true, expiry: now + 60 });
  });

  it('accepts the secondary key too', () => {
    expect(authenticateDevice(host, 'dev', user, token(undefined, undefined, Buffer.from(device.secondaryKey, 'base64')), lookup, now).ok).toBe(true);
  });

  it('refuses expired, foreign, wrongly signed and malformed tokens', () => {
    const cases: [string, Buffer | undefined][] = [
      ['token expired', token(undefined, now - 1)],
      ['not .*devices/dev', token(`${host}/devices/other`)],
      ['signature', token(undefined, undefined, randomBytes(32))],
      ['not a SAS token', Buffer.from('SharedAccessSignature sr=x')],
      ['no username or password', undefined],
    ];
    for (const [reason, password] of cases) {
      const result = authenticateDevice(host, 'dev', user, password, lookup, now);
      expect(result.ok, reason).toBe(false);
      expect(!result.ok && result.reason, reason).toMatch(new RegExp(reason));
    }
  });

  it('refuses unknown and disabled devices, and a client id that is not the username\'s device', () => {
    expect(authenticateDevice(host, 'ghost', `${host}/ghost/?api-version=1`, token(`${host}/devices/ghost`), lookup, now).ok).toBe(false);
    expect(authenticateDevice(host, 'other', user, token(), lookup, now).ok).toBe(false);
    const disabled = { ...device, status: 'disabled' as const };
    expect(authenticateDevice(host, 'dev', user, token(), () => disabled, now).ok).toBe(false);
  });

  it('reads the device id from usernames of the documented shape only', () => {
    expect(deviceIdFromUsername(host, user)).toBe('dev');
    expect(deviceIdFromUsername(host.toUpperCase(), user)).toBe('dev');
    for (const bad of [`${host}/dev/`, `${host}/dev`, `other/dev/?api-version=1`, `${host}/dev/mod/?api-version=1`, `${host}//?api-version=1`, '', '///']) {
      expect(deviceIdFromUsername(host, bad), bad).toBeUndefined();
    }
  });
});

describe('service SAS authentication', () => {
  const policies = new Map([['iothubowner', key]]);
  const serviceToken = (opts: { sr?: string; se?: number; skn?: string; k?: Buffer } = {}) =>
    createSas(opts.k ?? key, opts.sr ?? host, opts.se ?? now + 60, opts.skn ?? 'iothubowner');

  it('accepts a token for the hub signed with the policy key', () => {
    expect(checkServiceAuthorization(serviceToken(), host, policies, now)).toBe('iothubowner');
  });

  it('refuses with 401 what Azure refuses', () => {
    for (const header of [undefined, '', 'Bearer abc', serviceToken({ se: now - 1 }), serviceToken({ sr: 'other' }),
      serviceToken({ skn: 'device' }), serviceToken({ k: randomBytes(32) }), 'SharedAccessSignature sr=a&sig=%&se=1&skn=x',
      serviceToken().replace('&skn=iothubowner', '')]) {
      let caught: unknown;
      try {
        checkServiceAuthorization(header, host, policies, now);
      } catch (err) {
        caught = err;
      }
      expect(caught, String(header)).toBeInstanceOf(SimHubError);
      expect((caught as SimHubError).status).toBe(401);
    }
  });
});
