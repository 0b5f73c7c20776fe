import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { rootCertificates } from 'node:tls';
import {
  BlobSASPermissions, BlobServiceClient, generateBlobSASQueryParameters, newPipeline, SASProtocol, StorageSharedKeyCredential,
} from '@azure/storage-blob';
import type { ServerCredentials } from '../tls.js';

/**
 * Blob storage for the local hub's file uploads: the Azurite emulator (npm `azurite`) as a
 * process of its own, over TLS with the local cloud's certificate, so the device SDK's
 * upload is the real Azure Storage protocol (Put Block, Put Block List) against a real
 * server, verified against the test CA. Azurite's account and key are its documented,
 * well-known emulator ones (Microsoft Learn, "Use the Azurite emulator").
 */
export const ACCOUNT_NAME = 'devstoreaccount1';
const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
/** IoT Hub's default SAS URI lifetime for file uploads (configurable on a real hub). */
export const SAS_TTL_SECONDS = 3600;
/** A SAS version both @azure/storage-blob and Azurite sign and check alike. */
const SAS_VERSION = '2021-12-02';

export interface StorageOptions {
  address: string;
  /** Default: a free port, chosen by Azurite. */
  port?: number;
  dir: string;
  tls: ServerCredentials;
  /** The container IoT Hub puts uploads in. */
  container?: string;
}

export interface LocalStorage {
  /** `https://address:port/devstoreaccount1`: Azurite addresses accounts by path, not by host name. */
  readonly blobEndpoint: string;
  readonly container: string;
  /**
   * What the hub hands to devices as `hostName`. azure-iot-device builds the upload URL as
   * `https://{hostName}/{containerName}/{blobName}{sasToken}`: with the account path in
   * hostName, Azurite's path-style URL comes out without any change to the SDK.
   */
  readonly sdkHostName: string;
  /** `?sv=…&sig=…`: read and write on one blob for SAS_TTL_SECONDS, as IoT Hub hands out. */
  blobSas(blobName: string): string;
  download(blobName: string): Promise<Buffer>;
  /** The blob's size, or null when there is no such blob. */
  blobSize(blobName: string): Promise<number | null>;
  listBlobs(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startStorage(options: StorageOptions): Promise<LocalStorage> {
  const container = options.container ?? 'device-uploads';
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const { child, port } = await startAzurite(options.address, options.port ?? 0, options.dir, options.tls);
  const blobEndpoint = `https://${options.address}:${port}/${ACCOUNT_NAME}`;
  trustInThisProcess(options.tls.ca);
  const credential = new StorageSharedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY);
  const service = new BlobServiceClient(blobEndpoint, newPipeline(credential, { keepAliveOptions: { enable: false }, retryOptions: { maxTries: 2 } }));
  const containerClient = service.getContainerClient(container);
  try {
    await containerClient.createIfNotExists();
  } catch (err) {
    child.kill('SIGTERM');
    throw new Error(`Azurite at ${blobEndpoint} refused to create container ${container}: ${(err as Error).message}`, { cause: err });
  }
  return {
    blobEndpoint,
    container,
    sdkHostName: `${options.address}:${port}/${ACCOUNT_NAME}`,
    blobSas: (blobName) => `?${generateBlobSASQueryParameters({
      containerName: container, blobName, permissions: BlobSASPermissions.parse('rw'), protocol: SASProtocol.Https,
      startsOn: new Date(Date.now() - 60_000), expiresOn: new Date(Date.now() + SAS_TTL_SECONDS * 1000), version: SAS_VERSION,
    }, credential).toString()}`,
    download: async (blobName) => containerClient.getBlobClient(blobName).downloadToBuffer(),
    blobSize: async (blobName) => {
      try {
        return (await containerClient.getBlobClient(blobName).getProperties()).contentLength ?? null;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return null;
        throw err;
      }
    },
    listBlobs: async () => {
      const names: string[] = [];
      for await (const blob of containerClient.listBlobsFlat()) names.push(blob.name);
      return names;
    },
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/**
 * The storage SDK takes no CA option, and with keep-alive off its requests go through Node's
 * global HTTPS agent: this process trusts the cloud's CA there, beside the system roots
 * (a `ca` option replaces them, and other storage this process talks to stays reachable).
 */
function trustInThisProcess(ca: string): void {
  const options = https.globalAgent.options;
  const trusted = options.ca === undefined ? [...rootCertificates] : [options.ca].flat().map(String);
  if (!trusted.includes(ca)) options.ca = [...trusted, ca];
}

/** Starts azurite-blob with a fixed argv and waits for the line that says where it listens. */
async function startAzurite(address: string, port: number, dir: string, tls: ServerCredentials): Promise<{ child: ChildProcess; port: number }> {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js');
  } catch (err) {
    throw new Error('azurite is not installed: run npm ci (it is a devDependency)', { cause: err });
  }
  const certFile = path.join(dir, 'server.pem');
  const keyFile = path.join(dir, 'server.key');
  writeFileSync(certFile, tls.cert, { mode: 0o600 });
  writeFileSync(keyFile, tls.key, { mode: 0o600 });
  const child = spawn(process.execPath, [
    main, '--blobHost', address, '--blobPort', String(port), '--location', dir, '--cert', certFile, '--key', keyFile,
    // Never phone home from a test; newer clients' API versions are accepted as older ones;
    // --loose: the device SDK's storage client (12.8) sends an x-ms-encryption-algorithm
    // header on every Put Block that Azurite's strict mode refuses (FeatureNotSupported).
    '--disableTelemetry', '--skipApiVersionCheck', '--loose', '--silent',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const listening = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`Azurite did not start within 30 s: ${stderr.trim()}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with ${code}: ${stderr.trim()}${/EADDRINUSE/.test(stderr) ? ` (${address}:${port} is taken)` : ''}`));
    });
    // "Azurite Blob service successfully listens on https://127.0.0.1:43117"
    createInterface({ input: child.stdout }).on('line', (line) => {
      const port = /successfully listens on https?:\/\/\S+:(\d+)/.exec(line)?.[1];
      if (port) {
        clearTimeout(timer);
        resolve(Number(port));
      }
    });
  });
  child.removeAllListeners('exit');
  return { child, port: listening };
}
