import type { ClientRequest, IncomingMessage } from 'node:http';
import httpBase from 'azure-iot-http-base';
import provisioningHttp from 'azure-iot-provisioning-device-http';
import type { ProxyTunnel } from '../network/proxy-agent.js';

// CommonJS packages: Node's ESM loader cannot always see their named exports.
const HttpBase = httpBase.Http;
const { Http } = provisioningHttp;
type Http = InstanceType<typeof Http>;

/** Status and Retry-After of the last answer DPS gave, or why none came, whatever the SDK made of it. */
export interface DpsResponse {
  statusCode: number | undefined;
  retryAfter: string | undefined;
  /** A failure below HTTP (DNS, TCP, TLS), which the SDK may replace with a vaguer error. */
  error: Error | undefined;
}

type Done = (err: Error | undefined, body?: unknown, response?: IncomingMessage) => void;

/**
 * DPS allows a device 5 operation-status polls in 10 s (Microsoft Learn, DPS quotas and
 * limits); the SDK polls at the Retry-After DPS sends, so a shorter one is stretched to this.
 */
export const MIN_POLL_SECONDS = 3;

/**
 * The SDK's HTTP request builder, trusting the agent's CAs and remembering each response.
 * The SDK turns a 429 on the challenge request into an error that has lost the status
 * and Retry-After; this is where the agent sees them, so its own retry can honour them.
 *
 * Throttling of the signed requests (the registration and its status polls) is handed to
 * the SDK the way its transport means to handle it, as "try again after Retry-After":
 * azure-iot-provisioning-device-http waits and repeats a request answered 429, but its
 * HTTP layer reports every status of 300 and more as an error first, so that code never
 * runs and one throttled poll would end the registration (and the next attempt would be
 * billed and re-key the TPM). A polling interval shorter than MIN_POLL_SECONDS is stretched.
 */
class ObservingHttpBase extends HttpBase {
  last: DpsResponse | undefined;

  constructor(private readonly onDate?: DateObserver) {
    super();
  }

  override buildRequest(method: never, path: string, headers: never, host: never, options: never, done?: never): ClientRequest {
    const callback = (done ?? options) as unknown as Done;
    const sentAt = Date.now();
    const signed = typeof (headers as Record<string, unknown> | undefined)?.Authorization === 'string';
    const observed: Done = (err, body, response) => {
      const seen = response ?? (err as { response?: IncomingMessage } | undefined)?.response;
      if (seen) this.onDate?.(seen.headers?.date, sentAt, Date.now());
      this.last = {
        statusCode: seen?.statusCode,
        // Node keeps the first of repeated Retry-After headers: a string.
        retryAfter: seen?.headers?.['retry-after'],
        error: seen === undefined ? err : undefined,
      };
      if (signed && response) stretchPolling(response);
      if (signed && response?.statusCode === 429) return callback(undefined, body, response);
      callback(err, body, response);
    };
    return done === undefined
      ? super.buildRequest(method, path, headers, host, observed)
      : super.buildRequest(method, path, headers, host, options, observed);
  }
}

export interface DpsTransport {
  transport: Http;
  lastResponse: () => DpsResponse | undefined;
}

/** Each answer's Date header and the local wall-clock times around its request. */
export type DateObserver = (date: string | undefined, sentAt: number, receivedAt: number) => void;

/**
 * The unmodified SDK transport (DPS with TPM needs HTTPS), verifying TLS against the system
 * CAs plus `ca`, through `tunnel` when a proxy applies (azure-iot-http-base's `http.agent` option).
 */
export function createDpsTransport(ca?: string, onDate?: DateObserver, tunnel?: ProxyTunnel): DpsTransport {
  const base = new ObservingHttpBase(onDate);
  if (ca !== undefined || tunnel) base.setOptions({ ...(ca === undefined ? {} : { ca }), ...(tunnel ? { http: { agent: tunnel.agent } } : {}) });
  // The transport bundles its own copy of azure-iot-http-base; the class is the same code.
  return { transport: new Http(base as unknown as ConstructorParameters<typeof Http>[0]), lastResponse: () => base.last };
}

function stretchPolling(response: IncomingMessage): void {
  const given = Number(response.headers['retry-after']);
  if (response.statusCode === 202 || response.statusCode === 429) {
    if (!(given >= MIN_POLL_SECONDS)) response.headers['retry-after'] = String(MIN_POLL_SECONDS);
  }
}
