import type { IncomingMessage } from 'node:http';
import { Agent } from 'node:https';
import { observedDpsHttp, type DpsHttp, type RequestObserver } from '../azure-sdk/dps-requests.js';
import { sharedSecureContext } from '../lib/tls-context.js';
import type { ProxyTunnel } from '../network/proxy-agent.js';

/** Status and Retry-After of the last answer DPS gave, or why none came, whatever the SDK made of it. */
export interface DpsResponse {
  statusCode: number | undefined;
  retryAfter: string | undefined;
  /** A failure below HTTP (DNS, TCP, TLS), which the SDK may replace with a vaguer error. */
  error: Error | undefined;
}

/**
 * DPS allows a device 5 operation-status polls in 10 s (Microsoft Learn, DPS quotas and
 * limits); the SDK polls at the Retry-After DPS sends, so a shorter one is stretched to this.
 */
export const MIN_POLL_SECONDS = 3;

export interface DpsTransport {
  transport: DpsHttp;
  lastResponse: () => DpsResponse | undefined;
}

/** Each answer's Date header and the local wall-clock times around its request. */
export type DateObserver = (date: string | undefined, sentAt: number, receivedAt: number) => void;

/**
 * The unmodified SDK transport (DPS with TPM needs HTTPS), verifying TLS against `ca` (the
 * system CAs when undefined), through `tunnel` when a proxy applies (azure-iot-http-base's
 * `http.agent` option). Directly, an agent whose connections share one TLS context: the
 * SDK hands `ca` to every request, and Node would build a context from it for each.
 */
export function createDpsTransport(ca?: string, onDate?: DateObserver, tunnel?: ProxyTunnel): DpsTransport {
  let last: DpsResponse | undefined;
  const remember = (response: DpsResponse) => {
    last = response;
  };
  const agent = tunnel?.agent ?? (ca === undefined ? undefined : new Agent({ keepAlive: false, secureContext: sharedSecureContext(ca) }));
  // With `ca` there is always an agent: the tunnel's or the direct one.
  const options = agent ? { ...(ca === undefined ? {} : { ca }), http: { agent } } : undefined;
  return { transport: observedDpsHttp(answersSeen(remember, onDate), options), lastResponse: () => last };
}

/**
 * Remembers each response DPS gives (the SDK turns a 429 on the challenge request into an
 * error that has lost the status and Retry-After; this is where the agent sees them, so its
 * own retry can honour them), and reports its Date.
 *
 * Throttling of the signed requests (the registration and its status polls) is handed to
 * the SDK the way its transport means to handle it, as "try again after Retry-After":
 * azure-iot-provisioning-device-http waits and repeats a request answered 429, but its
 * HTTP layer reports every status of 300 and more as an error first, so that code never
 * runs and one throttled poll would end the registration (and the next attempt would be
 * billed and re-key the TPM). A polling interval shorter than MIN_POLL_SECONDS is stretched.
 */
function answersSeen(remember: (response: DpsResponse) => void, onDate?: DateObserver): RequestObserver {
  return (signed, done) => {
    const sentAt = Date.now();
    return (err, body, response) => {
      const seen = response ?? (err as { response?: IncomingMessage } | undefined)?.response;
      if (seen) onDate?.(seen.headers?.date, sentAt, Date.now());
      const retryAfter = seen?.headers?.['retry-after'] as string | string[] | undefined;
      remember({
        statusCode: seen?.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
        error: seen === undefined ? err : undefined,
      });
      if (signed && response) stretchPolling(response);
      if (signed && response?.statusCode === 429) return done(undefined, body, response);
      done(err, body, response);
    };
  };
}

function stretchPolling(response: IncomingMessage): void {
  const given = Number(response.headers['retry-after']);
  if (response.statusCode === 202 || response.statusCode === 429) {
    if (!(given >= MIN_POLL_SECONDS)) response.headers['retry-after'] = String(MIN_POLL_SECONDS);
  }
}
