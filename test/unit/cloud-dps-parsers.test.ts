import { describe, expect, it } from 'vitest';
import { chooseHub } from '../cloud/dps/allocation.js';
import { parseEnrollment, type Enrollment } from '../cloud/dps/enrollment.js';
import { Faults } from '../cloud/dps/faults.js';
import { parseRegistrationRequest } from '../cloud/dps/registration-request.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { SimDpsError } from '../cloud/errors.js';

let made: { tpm: SoftwareTpm; ek: string; srk: string } | undefined;
/** A software TPM and its keys in base64: two RSA key pairs, made by the first test that needs them. */
function keys(): { tpm: SoftwareTpm; ek: string; srk: string } {
  if (!made) {
    const tpm = SoftwareTpm.create();
    made = { tpm, ek: tpm.endorsementKey.toString('base64'), srk: tpm.storageRootKey.toString('base64') };
  }
  return made;
}
const hubs = ['hub-a.test', 'hub-b.test', 'hub-c.test'];

function refusal(fn: () => unknown): SimDpsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SimDpsError) return err;
    throw err;
  }
  throw new Error('expected a SimDpsError');
}

describe('registration request body', () => {
  it('reads the registration id, both keys and an optional payload', () => {
    const { tpm, ek, srk } = keys();
    const parsed = parseRegistrationRequest({ registrationId: 'dev-1', tpm: { endorsementKey: ek, storageRootKey: srk }, payload: { a: 1 } }, 'dev-1');
    expect(parsed.endorsementKey).toEqual(tpm.endorsementKey);
    expect(parsed.storageRootKey).toEqual(tpm.storageRootKey);
    expect(parsed.payload).toEqual({ a: 1 });
  });

  it.each([
    ['null', () => null],
    ['an array', () => []],
    ['a number', () => 7],
    ['no registrationId', () => ({ tpm: { endorsementKey: keys().ek, storageRootKey: keys().srk } })],
    ['a numeric registrationId', () => ({ registrationId: 5, tpm: {} })],
    ['a registrationId unlike the URL', () => ({ registrationId: 'dev-2', tpm: { endorsementKey: keys().ek, storageRootKey: keys().srk } })],
    ['no tpm', () => ({ registrationId: 'dev-1' })],
    ['tpm as a string', () => ({ registrationId: 'dev-1', tpm: 'x' })],
    ['no SRK', () => ({ registrationId: 'dev-1', tpm: { endorsementKey: keys().ek } })],
    ['an EK that is not base64', () => ({ registrationId: 'dev-1', tpm: { endorsementKey: 'ab$c', storageRootKey: keys().srk } })],
    ['an empty EK', () => ({ registrationId: 'dev-1', tpm: { endorsementKey: '', storageRootKey: keys().srk } })],
    ['an EK of 2 KiB', () => ({ registrationId: 'dev-1', tpm: { endorsementKey: Buffer.alloc(2048).toString('base64'), storageRootKey: keys().srk } })],
  ])('refuses %s with 400', (_what, body) => {
    expect(refusal(() => parseRegistrationRequest(body(), 'dev-1'))).toMatchObject({ status: 400, errorCode: 400004 });
  });
});

describe('enrollment body', () => {
  const base = () => ({ registrationId: 'dev-1', attestation: { type: 'tpm', tpm: { endorsementKey: keys().ek } } });

  it('defaults to enabled and keeps the optional fields DPS knows', () => {
    const parsed = parseEnrollment({ ...base(), deviceId: 'Device_1', iotHubs: ['hub-b.test'], allocationPolicy: 'static', initialTwin: { tags: { site: 'x' }, properties: { desired: { a: 1 } } }, unknownField: 1 }, 'dev-1', hubs);
    expect(parsed).toEqual({ ...base(), deviceId: 'Device_1', provisioningStatus: 'enabled', iotHubs: ['hub-b.test'], allocationPolicy: 'static', initialTwin: { tags: { site: 'x' }, properties: { desired: { a: 1 } } } });
  });

  it('treats null optional fields as absent, as the SDK sends them', () => {
    expect(parseEnrollment({ ...base(), deviceId: null, initialTwin: null, iotHubs: null, provisioningStatus: null }, 'dev-1', hubs)).toEqual({ ...base(), provisioningStatus: 'enabled' });
  });

  it.each([
    ['a registration id with capitals', () => ({ ...base(), registrationId: 'Dev-1' }), 'Dev-1'],
    ['a registration id ending in a dot', () => ({ ...base(), registrationId: 'dev.' }), 'dev.'],
    ['a registration id of 129 characters', () => ({ ...base(), registrationId: 'a'.repeat(129) }), 'a'.repeat(129)],
    ['symmetric key attestation', () => ({ ...base(), attestation: { type: 'symmetricKey' } }), 'dev-1'],
    ['attestation without a type', () => ({ ...base(), attestation: {} }), 'dev-1'],
    ['a TPM attestation without an EK', () => ({ ...base(), attestation: { type: 'tpm', tpm: {} } }), 'dev-1'],
    ['an SRK that is not a string', () => ({ ...base(), attestation: { type: 'tpm', tpm: { endorsementKey: keys().ek, storageRootKey: 5 } } }), 'dev-1'],
    ['a device id with a space', () => ({ ...base(), deviceId: 'a b' }), 'dev-1'],
    ['two hubs for static allocation', () => ({ ...base(), allocationPolicy: 'static', iotHubs: ['hub-a.test', 'hub-b.test'] }), 'dev-1'],
    ['iotHubs that is not a list', () => ({ ...base(), iotHubs: 'hub-a.test' }), 'dev-1'],
    ['an unlinked iotHubHostName', () => ({ ...base(), iotHubHostName: 'elsewhere.test' }), 'dev-1'],
    ['desired properties that are a list', () => ({ ...base(), initialTwin: { properties: { desired: [] } } }), 'dev-1'],
    ['tags that are a string', () => ({ ...base(), initialTwin: { tags: 'x' } }), 'dev-1'],
  ])('refuses %s with 400', (_what, body, id) => {
    expect(refusal(() => parseEnrollment(body(), id, hubs))).toMatchObject({ status: 400 });
  });
});

describe('allocation', () => {
  const enrollment = (over: Partial<Enrollment>): Enrollment => ({
    registrationId: 'dev-1', attestation: { type: 'tpm', tpm: { endorsementKey: keys().ek } }, provisioningStatus: 'enabled', etag: 'e', createdDateTimeUtc: '', lastUpdatedDateTimeUtc: '', ...over,
  });

  it('static: the enrollment\'s hub, else its iotHubHostName, else the first linked hub', () => {
    expect(chooseHub(enrollment({ allocationPolicy: 'static', iotHubs: ['hub-c.test'] }), hubs, 'hashed')).toBe('hub-c.test');
    expect(chooseHub(enrollment({ iotHubHostName: 'hub-b.test' }), hubs, 'static')).toBe('hub-b.test');
    expect(chooseHub(enrollment({}), hubs, 'static')).toBe('hub-a.test');
  });

  it('hashed: the same hub for the same registration id, and an even spread over many ids', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const hub = chooseHub(enrollment({ registrationId: `device-${i}` }), hubs, 'hashed');
      counts.set(hub, (counts.get(hub) ?? 0) + 1);
    }
    expect(chooseHub(enrollment({ registrationId: 'device-7' }), hubs, 'hashed')).toBe(chooseHub(enrollment({ registrationId: 'device-7' }), hubs, 'hashed'));
    for (const hub of hubs) expect(counts.get(hub)).toBeGreaterThan(900);
  });

  it('hashed within the enrollment\'s own hubs when it names several', () => {
    for (let i = 0; i < 50; i++) expect(['hub-b.test', 'hub-c.test']).toContain(chooseHub(enrollment({ registrationId: `d-${i}`, iotHubs: ['hub-b.test', 'hub-c.test'] }), hubs, 'hashed'));
  });

  it('fails clearly when no hub is linked', () => {
    expect(() => chooseHub(enrollment({}), [], 'hashed')).toThrow(/no IoT hub is linked/);
  });
});

describe('faults', () => {
  it('queues throttles and failures in order, then runs dry', () => {
    const faults = new Faults();
    faults.throttleNext(1, 9);
    faults.failNext(1);
    expect(faults.take()).toMatchObject({ status: 429, headers: { 'retry-after': '9' } });
    expect(faults.take()).toMatchObject({ status: 503 });
    expect(faults.take()).toBeUndefined();
  });
});
