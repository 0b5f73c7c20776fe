import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { trustForBlobStorage } from '../../agent/hub/file-upload.js';

describe('trusting tls.extraCaFile for blob storage', () => {
  const before = https.globalAgent.options.ca;
  afterEach(() => { https.globalAgent.options.ca = before; });

  it('adds the CA to the global agent beside the system roots, once, and leaves it alone without one', () => {
    https.globalAgent.options.ca = undefined;
    trustForBlobStorage(undefined);
    expect(https.globalAgent.options.ca).toBeUndefined();
    const ca = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
    trustForBlobStorage(ca);
    trustForBlobStorage(ca);
    const trusted = https.globalAgent.options.ca as unknown as string[];
    expect(trusted).toHaveLength(rootCertificates.length + 1);
    expect(trusted.slice(0, rootCertificates.length)).toEqual([...rootCertificates]);
    expect(trusted.at(-1)).toBe(ca);
  });
});
