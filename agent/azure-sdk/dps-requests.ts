import type { ClientRequest, IncomingMessage } from 'node:http';
import httpBase from 'azure-iot-http-base';
import provisioningHttp from 'azure-iot-provisioning-device-http';

// CommonJS packages: Node's ESM loader cannot always see their named exports.
const HttpBase = httpBase.Http;
const { Http } = provisioningHttp;
export type DpsHttp = InstanceType<typeof Http>;

/** How azure-iot-http-base answers a request: an error (with `response` when one came), the body, the response. */
export type RequestDone = (err: Error | undefined, body?: unknown, response?: IncomingMessage) => void;

/**
 * Sees each request the SDK's DPS transport sends: `signed` when it carries an Authorization
 * header; returns the callback that stands in for the SDK's own `done`.
 */
export type RequestObserver = (signed: boolean, done: RequestDone) => RequestDone;

/**
 * azure-iot-provisioning-device-http's transport over an azure-iot-http-base whose
 * `buildRequest` passes every answer through `observe` first. The SDK keeps DPS's status
 * and headers to itself (a 429 on the challenge request becomes an error without them),
 * and its own handling of a throttled signed request never runs; this is the one place
 * the agent stands between the SDK and its HTTP layer. The transport takes the HTTP layer
 * as its constructor argument (meant for tests); it bundles its own copy of
 * azure-iot-http-base, whose class is the same code.
 */
export function observedDpsHttp(observe: RequestObserver, options?: object): DpsHttp {
  const base = new ObservedHttpBase(observe);
  base.setOptions(options);
  return new Http(base as unknown as ConstructorParameters<typeof Http>[0]);
}

class ObservedHttpBase extends HttpBase {
  constructor(private readonly observe: RequestObserver) {
    super();
  }

  // buildRequest(method, path, headers, host, [options], done): options is optional in the middle.
  override buildRequest(method: never, path: string, headers: never, host: never, options: never, done?: never): ClientRequest {
    const signed = typeof (headers as Record<string, unknown> | undefined)?.Authorization === 'string';
    const observed = this.observe(signed, done ?? options);
    return done === undefined
      ? super.buildRequest(method, path, headers, host, observed)
      : super.buildRequest(method, path, headers, host, options, observed);
  }
}
