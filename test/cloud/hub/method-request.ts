import { hubErrors } from '../errors.js';
import { isJsonObject, type Json } from './twin.js';

/**
 * The body of `POST /twins/{id}/methods`, checked as IoT Hub checks it: a method
 * name that fits in an MQTT topic level, a response timeout of 5 to 300 s (default 30),
 * a connect timeout of 0 to 300 s (default 0), any JSON payload up to 128 KiB.
 */
export interface MethodRequest {
  methodName: string;
  payload: Json;
  responseTimeoutInSeconds: number;
  connectTimeoutInSeconds: number;
}

/** IoT Hub's limit on a direct method's payload, request and response. */
export const MAX_METHOD_PAYLOAD_BYTES = 128 * 1024;

export function parseMethodRequest(body: unknown): MethodRequest {
  if (!isJsonObject(body)) throw hubErrors.argumentInvalid('Method invocation body must be a JSON object');
  const { methodName, payload } = body;
  if (typeof methodName !== 'string' || methodName.length === 0 || methodName.length > 128 || /[/#+?]/.test(methodName) || methodName.includes('\u0000')) {
    throw hubErrors.argumentInvalid('methodName must be 1 to 128 characters without / # + ?');
  }
  if (payload !== undefined && Buffer.byteLength(JSON.stringify(payload)) > MAX_METHOD_PAYLOAD_BYTES) throw hubErrors.tooLarge(MAX_METHOD_PAYLOAD_BYTES);
  return {
    methodName,
    payload: payload === undefined ? null : payload,
    responseTimeoutInSeconds: seconds(body.responseTimeoutInSeconds, 'responseTimeoutInSeconds', 30, 5, 300),
    connectTimeoutInSeconds: seconds(body.connectTimeoutInSeconds, 'connectTimeoutInSeconds', 0, 0, 300),
  };
}

function seconds(value: Json | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw hubErrors.argumentInvalid(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}
