import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import device from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { trustForBlobStorage, uploadThroughHub } from '../../agent/hub/file-upload.js';

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

  it('keeps what the global agent already trusts, given as one PEM or as a list', () => {
    const ours = '-----BEGIN CERTIFICATE-----\nMIIBours\n-----END CERTIFICATE-----\n';
    https.globalAgent.options.ca = 'corporate';
    trustForBlobStorage(ours);
    expect(https.globalAgent.options.ca).toEqual(['corporate', ours]);
    https.globalAgent.options.ca = ['a', 'b'];
    trustForBlobStorage(ours);
    trustForBlobStorage('');
    expect(https.globalAgent.options.ca).toEqual(['a', 'b', ours]);
  });
});

describe('uploading a file through the hub', () => {
  const before = https.globalAgent.options.ca;
  afterEach(() => { https.globalAgent.options.ca = before; });

  /** A real SDK client for a hub on loopback where nothing answers HTTPS. */
  function client() {
    const c = device.Client.fromConnectionString('HostName=127.0.0.1;DeviceId=d1;SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAA==', deviceMqtt.Mqtt);
    c.on('error', () => undefined);
    return c;
  }

  it('names the file and the step that failed, keeping the hub\'s reason as the cause', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-upload-')), 'bundle.tar.gz');
    writeFileSync(file, 'x');
    const err = (await uploadThroughHub(client(), 'support/bundle.tar.gz', file, undefined).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(AgentError);
    expect(err.message).toMatch(/^IoT Hub file upload of support\/bundle\.tar\.gz failed: Could not obtain blob shared access signature/);
    expect((err.cause as Error).message).toMatch(/127\.0\.0\.1:443/);
  });

  it('fails on a file that is not there before asking the hub, and trusts the extra CA for blob storage', async () => {
    https.globalAgent.options.ca = undefined;
    const ca = '-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n';
    await expect(uploadThroughHub(client(), 'b', '/nonexistent/bundle.tar.gz', ca)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((https.globalAgent.options.ca as unknown as string[]).at(-1)).toBe(ca);
  });
});
