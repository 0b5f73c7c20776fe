import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hubErrors, SimHubError } from '../errors.js';
import { FileUploads } from '../files/file-uploads.js';
import { decodeSegment, header, readJsonBody, sendError, sendJson } from '../http.js';
import { handleAdmin } from './admin-api.js';
import type { HubCore } from './hub-core.js';
import { parseIdentityUpdate } from './identity-update.js';
import { parseMethodRequest } from './method-request.js';
import { checkServiceAuthorization } from './service-auth.js';

/**
 * The hub's HTTPS front on 443: the IoT Hub service REST calls azure-iothub makes
 * (twins, direct methods, device identities and their status) and, under /admin/, the local cloud's
 * own admin API (admin-api.ts). Both need a service SAS signed with a policy key.
 */
const MAX_BODY_BYTES = 192 * 1024;

export function serviceHandler(core: HubCore, policies: Map<string, Buffer>, log: (line: string) => void, files?: FileUploads) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    route(core, policies, req, res, files).catch((err: unknown) => {
      const error = err instanceof SimHubError ? err : internal(err, log);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // Drain what the client still sends, so it reads our answer instead of a reset.
      req.resume();
      sendError(res, error, randomUUID());
    });
  };
}

function internal(err: unknown, log: (line: string) => void): SimHubError {
  log(`service request failed: ${(err as Error).stack ?? String(err)}`);
  return hubErrors.internal();
}

async function route(core: HubCore, policies: Map<string, Buffer>, req: IncomingMessage, res: ServerResponse, files?: FileUploads): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://hub.invalid');
  // Device-facing file upload calls carry a device SAS, not a service one.
  if (files && FileUploads.matches(url.pathname)) return files.handle({ hostName: core.hostName, device: (id) => core.registry.get(id) }, req, res, url);
  checkServiceAuthorization(header(req, 'authorization'), core.hostName, policies);
  const segments = url.pathname.split('/').slice(1).map((segment) => decodeSegment(segment, hubErrors));
  const method = req.method ?? 'GET';
  const body = () => readJsonBody(req, MAX_BODY_BYTES, hubErrors);

  if (segments[0] === 'admin') return handleAdmin(core, method, segments.slice(1), url, body, res);
  if (!url.searchParams.get('api-version')) throw hubErrors.badFormat('The api-version query parameter is required');

  const [collection, id, sub, extra] = segments;
  if (!id || extra !== undefined) throw hubErrors.notFound(url.pathname);
  if (collection === 'twins' && sub === undefined && method === 'GET') return sendJson(res, 200, core.getTwin(id));
  if (collection === 'twins' && sub === undefined && method === 'PATCH') {
    return sendJson(res, 200, await core.updateTwin(id, await body(), header(req, 'if-match')));
  }
  if (collection === 'twins' && sub === 'methods' && method === 'POST') {
    const request = parseMethodRequest(await body());
    return sendJson(res, 200, await core.invokeMethod(id, request));
  }
  if (collection === 'devices' && sub === undefined && method === 'GET') return sendJson(res, 200, core.getDevice(id));
  if (collection === 'devices' && sub === undefined && method === 'PUT') {
    return sendJson(res, 200, await core.putDevice(id, parseIdentityUpdate(await body(), id), header(req, 'if-match')));
  }
  if (collection === 'devices' && sub === undefined && method === 'DELETE') {
    await core.deleteDevice(id, header(req, 'if-match'));
    res.writeHead(204).end();
    return;
  }
  throw hubErrors.notFound(`${method} ${url.pathname}`);
}
