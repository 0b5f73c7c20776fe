import type { Client, DeviceMethodParams } from 'azure-iothub';
import { isObject } from './json.js';

/** A direct method's answer as IoT Hub returns it to the service side. */
export interface MethodAnswer<Payload = unknown> {
  status: number;
  payload: Payload;
}

/**
 * A direct method through azure-iothub's Client.invokeDeviceMethod, whose result the SDK types
 * `any`: the answer is checked to be `{ status, payload }` before anyone reads it.
 */
export async function invokeMethod(client: Client, deviceId: string, params: DeviceMethodParams): Promise<MethodAnswer> {
  const answer: { result: unknown } = await client.invokeDeviceMethod(deviceId, params);
  return methodAnswer(answer.result);
}

/** Checks `result` is an answer; any other field it carries stays, for tests that compare the whole answer. */
export function methodAnswer(result: unknown): MethodAnswer {
  if (!isObject(result) || typeof result.status !== 'number') {
    throw new Error(`not a direct method answer (no numeric status): ${JSON.stringify(result)}`);
  }
  return { ...result, status: result.status, payload: result.payload };
}

/** The answer with its payload checked to be an object, for a caller that reads its fields. */
export function withObjectPayload(answer: MethodAnswer): MethodAnswer<Record<string, unknown>> {
  const { status, payload } = answer;
  if (!isObject(payload)) throw new Error(`the direct method answered ${status} with a payload that is not an object: ${JSON.stringify(payload)}`);
  return { status, payload };
}
