/**
 * The local cloud's HTTP error replies. DPS and IoT Hub word them differently (below), but
 * each is a status, perhaps some headers, and a JSON body in the real service's shape, so one
 * HTTP layer (http.ts) reads requests and answers errors for both.
 */
export abstract class SimHttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }

  /** The JSON body as the real service sends it; `trackingId` also goes out as a header. */
  abstract body(trackingId: string): unknown;
}

/** How one service words the refusals every request can earn, whatever its route (http.ts). */
export interface RequestRefusals {
  /** 413: the body is over the route's limit. */
  tooLarge(limit: number): SimHttpError;
  /** 400: the body or the URL cannot be read. */
  malformed(why: string): SimHttpError;
}

/**
 * DPS's error replies: `{"errorCode": <6 digits>, "trackingId", "message", "timestampUtc"}`.
 * 401002 is what DPS answers to any registration it will not authorise, and to a bad
 * service token; 404201 to a missing enrollment (both seen in DPS replies in the wild).
 * The others follow the same "status × 1000 + n" pattern as IoT Hub's codes.
 */
export class SimDpsError extends SimHttpError {
  constructor(status: number, readonly errorCode: number, message: string, headers: Record<string, string> = {}) {
    super(status, message, headers);
  }

  body(trackingId: string): Record<string, unknown> {
    return { errorCode: this.errorCode, trackingId, message: this.message, timestampUtc: new Date().toISOString() };
  }
}

const badRequest = (message: string) => new SimDpsError(400, 400004, message);

export const dpsErrors = {
  badRequest,
  unauthorized: (message: string) => new SimDpsError(401, 401002, message),
  notFound: (message: string) => new SimDpsError(404, 404201, message),
  methodNotAllowed: (message: string) => new SimDpsError(405, 405001, message),
  preconditionFailed: (message: string) => new SimDpsError(412, 412002, message),
  unsupportedMediaType: (message: string) => new SimDpsError(415, 415001, message),
  throttled: (retryAfterSeconds: number) =>
    new SimDpsError(429, 429001, 'The request was throttled: too many requests', { 'retry-after': String(retryAfterSeconds) }),
  unavailable: () => new SimDpsError(503, 503001, 'The service is unavailable; try again later'),
  internal: (why: string) => new SimDpsError(500, 500000, `internal error: ${why}`),
  tooLarge: (limit: number) => new SimDpsError(413, 413001, `the request body exceeds ${limit} bytes`),
  malformed: badRequest,
} satisfies RequestRefusals & Record<string, (...args: never[]) => SimDpsError>;

/**
 * An IoT Hub service error: HTTP status plus IoT Hub's error code name, which also goes out
 * as the `iothub-errorcode` header. The body is IoT Hub's classic shape,
 * `{"Message":"ErrorCode:<Code>;<text>","ExceptionMessage":…}`, which azure-iothub's
 * translateError turns into typed errors (DeviceNotFoundError, …).
 */
export class SimHubError extends SimHttpError {
  constructor(status: number, readonly code: string, message: string) {
    super(status, message, { 'iothub-errorcode': code });
  }

  body(trackingId: string): Record<string, string> {
    // Message text may not hold ';' — the SDK splits on the first one.
    const text = this.message.replace(/;/g, ',');
    return {
      Message: `ErrorCode:${this.code};${text}`,
      ExceptionMessage: `Tracking ID:${trackingId.replace(/-/g, '')}-TimeStamp:${new Date().toISOString()}`,
    };
  }
}

const badFormat = (why: string) => new SimHubError(400, 'IotHubFormatError', why);

export const hubErrors = {
  deviceNotFound: (id: string) => new SimHubError(404, 'DeviceNotFound', `Device ${id} not registered`),
  deviceNotOnline: (id: string) => new SimHubError(404, 'DeviceNotOnline', `Timed out waiting for device ${id} to connect.`),
  deviceAlreadyExists: (id: string) => new SimHubError(409, 'DeviceAlreadyExists', `A device with ID ${id} is already registered`),
  gatewayTimeout: () => new SimHubError(504, 'GatewayTimeout', 'Timed out waiting for the response from device.'),
  unauthorized: (why: string) => new SimHubError(401, 'IotHubUnauthorizedAccess', `Unauthorized: ${why}`),
  badFormat,
  argumentInvalid: (why: string) => new SimHubError(400, 'ArgumentInvalid', why),
  preconditionFailed: (why: string) => new SimHubError(412, 'PreconditionFailed', why),
  tooLarge: (limit: number) => new SimHubError(413, 'MessageTooLarge', `Request body is larger than ${limit} bytes`),
  notFound: (path: string) => new SimHubError(404, 'NotFound', `No such resource ${path}`),
  queueFull: (id: string) => new SimHubError(403, 'DeviceMaximumQueueDepthExceeded', `Device ${id} has too many undelivered cloud-to-device messages`),
  unavailable: (why: string) => new SimHubError(503, 'ServiceUnavailable', why),
  internal: () => new SimHubError(500, 'ServerError', 'Internal server error'),
  malformed: badFormat,
} satisfies RequestRefusals & Record<string, (...args: never[]) => SimHubError>;
