import https from 'node:https';
import type { SoftwareTpm } from './software-tpm.js';

/**
 * A device that speaks DPS's HTTPS registration protocol by hand (no SDK), with its keys
 * in a SoftwareTpm: for refusal tests that need to bend one thing at a time, and for
 * the benchmark.
 */
export interface DpsTarget {
  host: string;
  port?: number;
  idScope: string;
  /** Trusts the DPS's CA; keep-alive so a benchmark measures DPS and not TLS handshakes. */
  agent: https.Agent;
}

export interface SimDpsResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown> | undefined;
  text: string;
}

export const DEVICE_API_VERSION = '2019-03-31';

export function dpsRequest(target: DpsTarget, method: string, path: string, options: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<SimDpsResponse> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: target.host, port: target.port ?? 443, method, path, agent: target.agent, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> | undefined;
        try {
          body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function registerPath(target: DpsTarget, registrationId: string): string {
  return `/${target.idScope}/registrations/${encodeURIComponent(registrationId)}/register?api-version=${DEVICE_API_VERSION}`;
}

export function registrationBody(tpm: SoftwareTpm, registrationId: string): string {
  return JSON.stringify({ registrationId, tpm: { endorsementKey: tpm.endorsementKey.toString('base64'), storageRootKey: tpm.storageRootKey.toString('base64') } });
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', accept: 'application/json' };

/** Step 1: the unauthenticated PUT; activates the challenge into the software TPM when one comes back. */
export async function requestChallenge(target: DpsTarget, tpm: SoftwareTpm, registrationId: string): Promise<SimDpsResponse> {
  const res = await dpsRequest(target, 'PUT', registerPath(target, registrationId), { body: registrationBody(tpm, registrationId), headers: JSON_HEADERS });
  if (res.status === 401 && typeof res.body?.authenticationKey === 'string') tpm.activate(Buffer.from(res.body.authenticationKey, 'base64'));
  return res;
}

/** The registration SAS token as the SDK makes it, signed by the software TPM. */
export function registrationSas(tpm: SoftwareTpm, target: DpsTarget, registrationId: string, expiry = Math.floor(Date.now() / 1000) + 3600): string {
  const audience = encodeURIComponent(`${target.idScope}/registrations/${registrationId}`);
  const sig = encodeURIComponent(tpm.sign(Buffer.from(`${audience}\n${expiry}`)).toString('base64'));
  return `SharedAccessSignature sr=${audience}&sig=${sig}&se=${expiry}&skn=registration`;
}

/** Step 2: the authenticated PUT. */
export function sendRegistration(target: DpsTarget, tpm: SoftwareTpm, registrationId: string, sas: string): Promise<SimDpsResponse> {
  return dpsRequest(target, 'PUT', registerPath(target, registrationId), { body: registrationBody(tpm, registrationId), headers: { ...JSON_HEADERS, authorization: sas } });
}

export function operationStatus(target: DpsTarget, registrationId: string, operationId: string, sas: string): Promise<SimDpsResponse> {
  return dpsRequest(target, 'GET', `/${target.idScope}/registrations/${encodeURIComponent(registrationId)}/operations/${encodeURIComponent(operationId)}?api-version=${DEVICE_API_VERSION}`,
    { headers: { accept: 'application/json', authorization: sas } });
}

/**
 * The whole flow: challenge, SAS, poll until assigned (at most `maxPolls`, honouring
 * retry-after scaled by `pollScale`), then activate the final blob. Returns the final
 * registration state and the hub key the software TPM now holds.
 */
export async function provisionSoftwareDevice(target: DpsTarget, tpm: SoftwareTpm, registrationId: string, options: { maxPolls?: number; pollScale?: number } = {}): Promise<{ registrationState: Record<string, unknown>; hubKey: Buffer }> {
  const challenge = await requestChallenge(target, tpm, registrationId);
  if (challenge.status !== 401 || !challenge.body?.authenticationKey) throw new Error(`no challenge: ${challenge.status} ${challenge.text}`);
  const sas = registrationSas(tpm, target, registrationId);
  let res = await sendRegistration(target, tpm, registrationId, sas);
  for (let poll = 0; res.body?.status === 'assigning' && poll < (options.maxPolls ?? 50); poll++) {
    await new Promise((r) => setTimeout(r, Number(res.headers['retry-after'] ?? 1) * 1000 * (options.pollScale ?? 1)));
    res = await operationStatus(target, registrationId, String(res.body.operationId), sas);
  }
  const state = res.body?.registrationState as Record<string, unknown> | undefined;
  if (res.status !== 200 || res.body?.status !== 'assigned' || !state) throw new Error(`registration did not complete: ${res.status} ${res.text}`);
  const hubKey = tpm.activate(Buffer.from(String((state.tpm as Record<string, unknown>).authenticationKey), 'base64'));
  return { registrationState: state, hubKey };
}
