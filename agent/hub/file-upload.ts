import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Client } from 'azure-iot-device';
import { AgentError } from '../lib/errors.js';

/**
 * Trusts `ca` (PEM, tls.extraCaFile) for blob storage, beside the system's roots. The device
 * SDK uploads with @azure/storage-blob, keep-alive off, which sends its requests through
 * Node's global HTTPS agent and takes no CA option; an agent's options win over a request's,
 * so the CA goes there. Adding, never replacing: Node's `ca` replaces the default roots.
 */
export function trustForBlobStorage(ca: string | undefined): void {
  if (!ca) return;
  const current = https.globalAgent.options.ca;
  const trusted = Array.isArray(current) ? current.map(String) : current ? [String(current)] : [...rootCertificates];
  if (!trusted.includes(ca)) https.globalAgent.options.ca = [...trusted, ca];
}

/**
 * Uploads a file through IoT Hub file upload with the SDK's own uploadToBlob: a SAS URI
 * for `blobName` from the hub (which files it under the device id), the upload to blob
 * storage, then the completion notification to the hub. Resolves once the hub has the
 * notification; rejects with the step that failed.
 */
export async function uploadThroughHub(client: Client, blobName: string, file: string, ca: string | undefined): Promise<void> {
  trustForBlobStorage(ca);
  const { size } = await stat(file);
  const stream = createReadStream(file);
  try {
    await client.uploadToBlob(blobName, stream, size);
  } catch (err) {
    // The SDK keeps the reason (the hub's or the storage's answer) in innerError, not cause.
    const inner = (err as { innerError?: unknown }).innerError;
    throw new AgentError(`IoT Hub file upload of ${blobName} failed: ${(err as Error).message}`, { cause: inner ?? err });
  } finally {
    stream.destroy();
  }
}
