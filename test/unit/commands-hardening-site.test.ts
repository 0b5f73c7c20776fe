import { describe, expect, it } from 'vitest';
import { hardeningSiteFromEnv, PRODUCTION_SITE } from '../../agent/commands/hardening-access.js';
import { neededEndpoints } from '../../agent/commands/needed-endpoints.js';
import { DEFAULTS } from '../../agent/config.js';

describe('where the hardening commands apply profiles', () => {
  it('is the real root and namespace in production, confirming against the hub and DPS of the moment', () => {
    expect(hardeningSiteFromEnv({})).toEqual(PRODUCTION_SITE);
    expect(PRODUCTION_SITE).toEqual({ root: '/', backend: 'auto' });
  });

  it('is a test namespace and temporary root when IOT_AGENT_HARDENING_TEST names them', () => {
    expect(hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: 'netns=iotagent-1-d,root=/tmp/r,backend=nft,confirm=10.200.1.2:8883;10.200.1.2:443' })).toEqual({
      root: '/tmp/r', netns: 'iotagent-1-d', backend: 'nft', confirmTargets: [{ host: '10.200.1.2', port: 8883 }, { host: '10.200.1.2', port: 443 }],
    });
  });

  it.each([
    ['netns=x,root=/', /never \//],
    ['netns=x', /root=/],
    ['root=/tmp/r', /netns=/],
    ['netns=a b,root=/tmp/r', /netns=/],
    ['netns=x,root=/tmp/r,backend=pf', /backend must be one of/],
  ])('refuses a test override that could reach this machine: %s', (spec, message) => {
    expect(() => hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: spec })).toThrow(message);
  });

  it('takes the backend the engine picks, and the hub and DPS of the moment, unless the override names them', () => {
    expect(hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: 'root=/tmp/r,netns=ns-1' })).toStrictEqual({ root: '/tmp/r', netns: 'ns-1', backend: 'auto' });
    expect(hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: 'root=/tmp/r,netns=ns-1,backend=legacy' })).toMatchObject({ backend: 'legacy' });
  });

  it.each([
    ['netns=x,root=tmp/r', /root=<absolute temporary directory>, never \//],
    ['netns=x,root=', /root=/],
    [`netns=${'a'.repeat(65)},root=/tmp/r`, /netns=<a namespace the test created>/],
    ['netns=-x,root=/tmp/r', /netns=/],
    ['netns=x/y,root=/tmp/r', /netns=/],
    ['netns=x,root=/tmp/r,backend=', /backend must be one of auto, nft, legacy/],
  ])('refuses the override %j', (spec, message) => {
    expect(() => hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: spec })).toThrow(message);
  });

  it('takes a namespace name of up to 64 characters', () => {
    expect(hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: `netns=A${'b_.-'.repeat(15)}xyz,root=/tmp/r` }).netns).toHaveLength(64);
  });

  it('refuses a confirm target that is not host:port', () => {
    expect(() => hardeningSiteFromEnv({ IOT_AGENT_HARDENING_TEST: 'netns=x,root=/tmp/r,confirm=10.0.0.2' })).toThrow();
  });

  it('confirms against DPS alone until a hub is assigned, then against the hub first', () => {
    expect(neededEndpoints(DEFAULTS, undefined)).toEqual([{ host: 'global.azure-devices-provisioning.net', port: 443 }]);
    expect(neededEndpoints(DEFAULTS, { assignedHub: 'hub-2.azure-devices.net' })).toEqual([
      { host: 'hub-2.azure-devices.net', port: 8883 }, { host: 'global.azure-devices-provisioning.net', port: 443 },
    ]);
  });
});

