import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hubErrors } from '../errors.js';
import { decodeSegment, header, readJsonBody, sendJson } from '../http.js';
import type { DeviceRecord } from '../hub/registry.js';
import { checkSas, parseSasOrRefuse } from '../sas.js';
import type { LocalStorage } from './storage.js';

/**
 * IoT Hub's device-facing file upload endpoints (Microsoft Learn: "Upload files with IoT
 * Hub", and the IoT Hub device REST API "Create File Upload Sas Uri" / "Update File Upload
 * Status", api-version 2021-04-12):
 * - `POST /devices/{id}/files` `{"blobName"}` → 200 `{correlationId, hostName, containerName,
 *   blobName, sasToken}`: the blob is filed under the device id (`{id}/{blobName}`), and the
 *   SAS grants read and write on that one blob for an hour (the hub's default TTL).
 * - `POST /devices/{id}/files/notifications` `{correlationId, isSuccess, statusCode,
 *   statusDescription}` → 204. azure-iot-device posts to `…/notifications/{correlationId}`
 *   with the same body; both are served. The hub then checks the blob is there and queues a
 *   file upload notification for the service side (`notifications()` here).
 * Both authenticate with the device's SAS token (`sr={host}/devices/{id}`), like MQTT.
 */
export interface FileUploadNotification {
  deviceId: string;
  blobName: string;
  blobUri: string;
  correlationId: string;
  isSuccess: boolean;
  statusCode: number;
  statusDescription: string;
  /** The size the hub found in storage, null when the blob is not there. */
  blobSizeInBytes: number | null;
  enqueuedTimeUtc: string;
}

interface PendingUpload {
  deviceId: string;
  blobName: string;
  createdAt: number;
}

export interface DeviceLookup {
  hostName: string;
  device(deviceId: string): DeviceRecord | undefined;
}

const PATH = /^\/devices\/([^/]+)\/files(?:\/(notifications)(?:\/([^/]+))?)?$/;
const MAX_BODY_BYTES = 16 * 1024;
/** Blob names as Azure Storage takes them: 1 to 1024 characters, no empty or dot segments. */
const MAX_BLOB_NAME = 1024;

export class FileUploads {
  private readonly pending = new Map<string, PendingUpload>();
  private readonly delivered: FileUploadNotification[] = [];

  constructor(private readonly storage: LocalStorage) {}

  /** Whether a hub HTTPS request is one of these (served before the service API's own auth). */
  static matches(pathname: string): boolean {
    return PATH.test(pathname);
  }

  notifications(deviceId?: string): FileUploadNotification[] {
    return this.delivered.filter((n) => deviceId === undefined || n.deviceId === deviceId);
  }

  async handle(hub: DeviceLookup, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const [, rawId, notifications, rawCorrelation] = PATH.exec(url.pathname)!;
    const deviceId = decodeSegment(rawId!, hubErrors);
    if (req.method !== 'POST') throw hubErrors.notFound(`${req.method} ${url.pathname}`);
    if (!url.searchParams.get('api-version')) throw hubErrors.badFormat('The api-version query parameter is required');
    authenticate(hub, deviceId, header(req, 'authorization'));
    const body = await readJsonBody(req, MAX_BODY_BYTES, hubErrors);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw hubErrors.argumentInvalid('Request body must be a JSON object');
    if (notifications) {
      await this.complete(deviceId, body as Record<string, unknown>, rawCorrelation === undefined ? undefined : decodeSegment(rawCorrelation, hubErrors));
      res.writeHead(204).end();
      return;
    }
    sendJson(res, 200, this.start(deviceId, (body as Record<string, unknown>).blobName));
  }

  private start(deviceId: string, requested: unknown) {
    const name = checkBlobName(requested);
    const blobName = `${deviceId}/${name}`;
    const correlationId = Buffer.from(`${new Date().toISOString()}_${randomUUID()}_${name}`).toString('base64');
    this.pending.set(correlationId, { deviceId, blobName, createdAt: Date.now() });
    return {
      correlationId, hostName: this.storage.sdkHostName, containerName: this.storage.container, blobName, sasToken: this.storage.blobSas(blobName),
    };
  }

  private async complete(deviceId: string, body: Record<string, unknown>, fromPath: string | undefined): Promise<void> {
    const correlationId = fromPath ?? body.correlationId;
    if (typeof correlationId !== 'string' || correlationId === '') throw hubErrors.argumentInvalid('correlationId is required');
    const { isSuccess, statusCode, statusDescription } = body;
    if (typeof isSuccess !== 'boolean') throw hubErrors.argumentInvalid('isSuccess must be true or false');
    if (typeof statusCode !== 'number' || !Number.isInteger(statusCode)) throw hubErrors.argumentInvalid('statusCode must be a whole number');
    if (statusDescription !== undefined && typeof statusDescription !== 'string') throw hubErrors.argumentInvalid('statusDescription must be a string');
    const upload = this.pending.get(correlationId);
    if (!upload || upload.deviceId !== deviceId) throw hubErrors.argumentInvalid(`No file upload with correlation id ${correlationId.slice(0, 80)} for device ${deviceId}`);
    this.pending.delete(correlationId);
    this.delivered.push({
      deviceId, blobName: upload.blobName, blobUri: `${this.storage.blobEndpoint}/${this.storage.container}/${upload.blobName}`,
      correlationId, isSuccess, statusCode, statusDescription: statusDescription ?? '',
      blobSizeInBytes: await this.storage.blobSize(upload.blobName), enqueuedTimeUtc: new Date().toISOString(),
    });
  }
}

export function checkBlobName(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw hubErrors.argumentInvalid('blobName is required');
  if (value.length > MAX_BLOB_NAME) throw hubErrors.argumentInvalid(`blobName is longer than ${MAX_BLOB_NAME} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(value)) throw hubErrors.argumentInvalid('blobName holds control characters or a backslash');
  if (value.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw hubErrors.argumentInvalid('blobName has an empty, "." or ".." path segment');
  }
  return value;
}

/** The device SAS, as for MQTT: `sr={host}/devices/{id}`, signed with one of the device's keys. */
function authenticate(hub: DeviceLookup, deviceId: string, authorization: string | undefined): void {
  if (!authorization) throw hubErrors.unauthorized('no Authorization header');
  const token = parseSasOrRefuse(authorization, (why) => hubErrors.unauthorized(`malformed token (${why})`));
  const expected = `${hub.hostName}/devices/${deviceId}`;
  if (token.resource.toLowerCase() !== expected.toLowerCase()) throw hubErrors.unauthorized(`token is for ${token.resource}, not ${expected}`);
  const device = hub.device(deviceId);
  if (!device || device.status !== 'enabled') throw hubErrors.unauthorized(`device ${deviceId} is not registered or disabled`);
  const results = [device.primaryKey, device.secondaryKey].map((key) => checkSas(token, Buffer.from(key, 'base64')));
  if (results.includes('ok')) return;
  throw hubErrors.unauthorized(results.includes('expired') ? 'token expired' : 'signature does not match the device key');
}
