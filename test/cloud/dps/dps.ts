import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LinkedHub } from '../contracts.js';
import { createSas } from '../sas.js';
import { ensureServerCredentials, listenerTlsOptions, type ServerCredentials } from '../tls.js';
import { isRegistrationId, type AllocationPolicy, type Enrollment, type EnrollmentRequest } from './enrollment.js';
import { dpsErrors, SimDpsError } from '../errors.js';
import { decodeSegment, readBody, readJsonBody, sendError, sendJson } from '../http.js';
import { Faults } from './faults.js';
import { parseRegistrationRequest } from './registration-request.js';
import { Registrations, type DisabledEnrollmentAnswer, type RegistrationCounters, type Reply } from './registrations.js';
import { EnrollmentService } from './service-api.js';
import { DpsState } from './state.js';

/** Knobs for what DPS does where its documentation leaves it open. */
export interface DpsBehaviour {
  /** What a device of a disabled enrollment gets (registrations.ts); `status` by default. */
  disabledEnrollment?: DisabledEnrollmentAnswer;
}

export interface DpsOptions {
  /** The loopback address to listen on; also the host name devices use, unless hostName is given. */
  address: string;
  /** Enrollments, assignments, the id scope, the service key and (by default) the TLS files live here. */
  stateDir: string;
  linkedHubs: LinkedHub[];
  /** Kept across restarts once chosen; a random `0ne…` scope by default. */
  idScope?: string;
  /** Base64 key of the `provisioningserviceowner` policy; random and kept across restarts by default. */
  serviceKey?: string;
  /** The policy for enrollments that name none: `hashed` (evenly weighted, DPS's default) or `static`. */
  allocation?: AllocationPolicy;
  /** A name that resolves to `address`, for the certificate and for devices; defaults to the address. */
  hostName?: string;
  port?: number;
  retryAfterSeconds?: number;
  /** Certificates made elsewhere (e.g. one CA for the whole local cloud); made in stateDir/tls otherwise. */
  tls?: ServerCredentials;
  behaviour?: DpsBehaviour;
}

export interface Dps {
  readonly host: string;
  readonly port: number;
  readonly idScope: string;
  /** PEM of the CA that issued the server certificate: what clients must trust. */
  readonly ca: string;
  readonly caCertPath: string;
  readonly serviceConnectionString: string;
  readonly faults: Faults;
  readonly counters: RegistrationCounters & { serviceRequests: number };
  /** Changes DPS's knobs. */
  configure(behaviour: DpsBehaviour): void;
  /** Creates or replaces an individual enrollment, as the service API's PUT does. */
  enroll(enrollment: EnrollmentRequest): Enrollment;
  enrollment(registrationId: string): Enrollment | undefined;
  stop(): Promise<void>;
}

export const SERVICE_POLICY = 'provisioningserviceowner';
const DEVICE_PATH = /^\/([^/]+)\/registrations\/([^/]+)\/(register|operations\/([^/]+))$/;
const ENROLLMENT_PATH = /^\/enrollments\/([^/]+)$/;
/** Request bodies larger than this are refused before they are read (DPS's TPM bodies are ~1 KiB). */
const BODY_LIMIT = 64 * 1024;

/** Starts the local DPS on https://<address>:443. */
/**
 * What DPS answers a registration in progress with: `retry-after=3` in the real service's
 * traces on Microsoft Learn (IoT Central's "Create and connect a client application"
 * tutorial, the C sample's MQTT log) and in the Azure SDK for C's tests of DPS responses.
 */
export const DPS_RETRY_AFTER_SECONDS = 3;

export async function startDps(options: DpsOptions): Promise<Dps> {
  const host = options.hostName ?? options.address;
  const state = new DpsState(path.join(options.stateDir, 'dps'), { idScope: options.idScope, serviceKey: options.serviceKey });
  const { idScope, serviceKey } = state.identity;
  const tls = options.tls ?? await ensureServerCredentials(path.join(options.stateDir, 'tls'), [...new Set([host, options.address])]);
  const hubNames = options.linkedHubs.map((h) => h.hostName);
  const faults = new Faults();
  const registrationOptions = {
    idScope, linkedHubs: options.linkedHubs, allocation: options.allocation ?? 'hashed', retryAfterSeconds: options.retryAfterSeconds ?? DPS_RETRY_AFTER_SECONDS,
    disabledEnrollment: options.behaviour?.disabledEnrollment ?? 'status', faults,
  };
  const registrations = new Registrations(state, registrationOptions);
  const service = new EnrollmentService(state, { host, policyName: SERVICE_POLICY, key: Buffer.from(serviceKey, 'base64') }, hubNames);
  const counters = Object.assign(registrations.counters, { serviceRequests: 0 });

  async function route(req: IncomingMessage): Promise<Reply> {
    const url = new URL(req.url ?? '/', 'https://dps.invalid');
    const device = DEVICE_PATH.exec(url.pathname);
    if (device) {
      if (faults.latencyMs > 0) await sleep(faults.latencyMs);
      try {
        return await deviceRoute(req, url, decodeSegment(device[1]!, dpsErrors), decodeSegment(device[2]!, dpsErrors),
          device[4] === undefined ? undefined : decodeSegment(device[4], dpsErrors));
      } catch (err) {
        if (err instanceof SimDpsError && err.status < 500 && err.status !== 429) counters.refusals++;
        throw err;
      }
    }
    const enrollment = ENROLLMENT_PATH.exec(url.pathname);
    if (enrollment) {
      counters.serviceRequests++;
      requireApiVersion(url);
      service.authenticate(req.headers.authorization);
      const id = decodeSegment(enrollment[1]!, dpsErrors);
      const ifMatch = req.headers['if-match'];
      switch (req.method) {
        case 'PUT': return service.put(id, await readJson(req), ifMatch);
        case 'GET': await readBody(req, BODY_LIMIT, dpsErrors); return service.get(id);
        case 'DELETE': await readBody(req, BODY_LIMIT, dpsErrors); return service.delete(id, ifMatch);
        default: throw dpsErrors.methodNotAllowed(`${req.method} is not allowed on an enrollment`);
      }
    }
    req.resume();
    throw dpsErrors.notFound(`no such resource: ${url.pathname}`);
  }

  async function deviceRoute(req: IncomingMessage, url: URL, scope: string, registrationId: string, operationId: string | undefined): Promise<Reply> {
    requireApiVersion(url);
    if (scope !== idScope) throw dpsErrors.notFound(`unknown ID scope ${scope}`);
    if (!isRegistrationId(registrationId)) {
      req.resume();
      throw dpsErrors.badRequest('the registration id is not valid: 1 to 128 of a-z 0-9 - . _ :, starting and ending with a letter or digit');
    }
    if (operationId === undefined) {
      if (req.method !== 'PUT') throw dpsErrors.methodNotAllowed('registration takes PUT');
      const fault = faults.take(req.headers.authorization !== undefined);
      if (fault) {
        req.resume();
        throw fault;
      }
      return registrations.register(parseRegistrationRequest(await readJson(req), registrationId), req.headers.authorization);
    }
    if (req.method !== 'GET') throw dpsErrors.methodNotAllowed('operation status takes GET');
    await readBody(req, BODY_LIMIT, dpsErrors); // the SDK sends "{}" with its GET
    const reply = registrations.operationStatus(registrationId, operationId, req.headers.authorization);
    return { ...reply, body: faults.answer(reply.body) };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const trackingId = randomUUID();
    res.sendDate = !faults.omitDate;
    try {
      const reply = await route(req);
      if (reply.body === undefined) {
        res.writeHead(reply.status, { 'x-ms-request-id': trackingId, ...reply.headers });
        res.end();
      } else {
        sendJson(res, reply.status, reply.body, { 'x-ms-request-id': trackingId, ...reply.headers });
      }
    } catch (err) {
      const error = err instanceof SimDpsError ? err : dpsErrors.internal((err as Error).message);
      if (!res.headersSent) sendError(res, error, trackingId);
    }
  }

  // Date goes on every answer (Node's default, as DPS does); SNI is required for a DNS host name.
  const server = https.createServer({ ...listenerTlsOptions(tls, host), keepAlive: true }, (req, res) => void handle(req, res));
  const port = options.port ?? 443;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, options.address, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    host, port, idScope, ca: tls.ca, caCertPath: tls.caCertPath, faults, counters,
    configure: (behaviour) => { registrationOptions.disabledEnrollment = behaviour.disabledEnrollment ?? 'status'; },
    serviceConnectionString: `HostName=${host};SharedAccessKeyName=${SERVICE_POLICY};SharedAccessKey=${serviceKey}`,
    enroll: (input) => service.put(input.registrationId, input, undefined).body as Enrollment,
    enrollment: (id) => state.enrollments.get(id),
    stop: () => new Promise<void>((resolve) => {
      server.close(() => {
        state.flush();
        resolve();
      });
      server.closeAllConnections();
    }),
  };
}

function requireApiVersion(url: URL): void {
  if (!url.searchParams.get('api-version')) throw dpsErrors.badRequest('the api-version query parameter is required');
}

/** A JSON request body: the content type must be JSON (415), the text valid JSON (400), at most BODY_LIMIT bytes (413). */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    req.resume();
    throw dpsErrors.unsupportedMediaType(`content type ${JSON.stringify(type)} is not application/json`);
  }
  return readJsonBody(req, BODY_LIMIT, dpsErrors);
}

/** A service SAS token as the SDK makes one, for callers that talk to the REST API directly. */
export function serviceToken(host: string, key: string, expiry = Math.floor(Date.now() / 1000) + 3600): string {
  return createSas(Buffer.from(key, 'base64'), host, expiry, SERVICE_POLICY);
}
