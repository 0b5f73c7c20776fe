import { randomUUID } from 'node:crypto';

/**
 * An IoT Hub service error: HTTP status plus IoT Hub's error code name. The body
 * is IoT Hub's classic shape, `{"Message":"ErrorCode:<Code>;<text>","ExceptionMessage":…}`,
 * which azure-iothub's translateError turns into typed errors (DeviceNotFoundError, …).
 */
export class HubError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export const errors = {
  deviceNotFound: (id: string) => new HubError(404, 'DeviceNotFound', `Device ${id} not registered`),
  deviceNotOnline: (id: string) => new HubError(404, 'DeviceNotOnline', `Timed out waiting for device ${id} to connect.`),
  gatewayTimeout: () => new HubError(504, 'GatewayTimeout', 'Timed out waiting for the response from device.'),
  unauthorized: (why: string) => new HubError(401, 'IotHubUnauthorizedAccess', `Unauthorized: ${why}`),
  badFormat: (why: string) => new HubError(400, 'IotHubFormatError', why),
  argumentInvalid: (why: string) => new HubError(400, 'ArgumentInvalid', why),
  preconditionFailed: (why: string) => new HubError(412, 'PreconditionFailed', why),
  tooLarge: (limit: number) => new HubError(413, 'MessageTooLarge', `Request body is larger than ${limit} bytes`),
  notFound: (path: string) => new HubError(404, 'NotFound', `No such resource ${path}`),
  queueFull: (id: string) => new HubError(403, 'DeviceMaximumQueueDepthExceeded', `Device ${id} has too many undelivered cloud-to-device messages`),
  unavailable: (why: string) => new HubError(503, 'ServiceUnavailable', why),
};

export function errorBody(error: HubError): string {
  // Message text may not hold ';' — the SDK splits on the first one.
  const text = error.message.replace(/;/g, ',');
  return JSON.stringify({
    Message: `ErrorCode:${error.code};${text}`,
    ExceptionMessage: `Tracking ID:${randomUUID().replace(/-/g, '')}-TimeStamp:${new Date().toISOString()}`,
  });
}
