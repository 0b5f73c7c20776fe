import { describe, expect, it } from 'vitest';
import { PRODUCTION_SITE } from '../../agent/hardening-bridge/site.js';
import { hardeningSiteFromEnv } from '../../agent/runtime-overrides.js';

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
});
