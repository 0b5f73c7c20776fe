import iothub from 'azure-iothub';
import { describeError } from '../agent/lib/errors.js';
import { VerifierError } from './errors.js';

/** The device as the verifier reaches it: direct methods and the twin, through IoT Hub only. */
export interface DeviceChannel {
  readonly deviceId: string;
  invoke(methodName: string, payload: unknown): Promise<{ status: number; payload: unknown }>;
  reported(): Promise<Record<string, unknown>>;
}

export interface ServiceClients {
  client: iothub.Client;
  registry: iothub.Registry;
}

/** The unmodified azure-iothub service clients for a hub connection string (a private CA comes from NODE_EXTRA_CA_CERTS). */
export function serviceClientsFrom(connectionString: string): ServiceClients {
  try {
    return { client: iothub.Client.fromConnectionString(connectionString), registry: iothub.Registry.fromConnectionString(connectionString) };
  } catch (err) {
    throw new VerifierError('the IoT Hub connection string is not usable', {
      cause: err, usage: true, hint: 'HostName=<hub>.azure-devices.net;SharedAccessKeyName=<policy with service connect and registry read>;SharedAccessKey=<key>',
    });
  }
}

/** Direct methods with azure-iothub's Client.invokeDeviceMethod, the twin with Registry.getTwin. */
export function hubChannel(clients: ServiceClients, deviceId: string, responseTimeoutInSeconds = 30): DeviceChannel {
  return {
    deviceId,
    invoke: async (methodName, payload) => {
      try {
        const answer: { result: unknown } = await clients.client.invokeDeviceMethod(deviceId, { methodName, payload, responseTimeoutInSeconds, connectTimeoutInSeconds: 15 });
        return methodAnswer(answer.result);
      } catch (err) {
        throw new VerifierError(`${methodName} on ${deviceId} did not get an answer`, {
          cause: err, hint: 'is the device connected to this hub (its twin shows it), and does it run an agent with attestation?',
        });
      }
    },
    reported: async () => {
      try {
        const { responseBody } = await clients.registry.getTwin(deviceId);
        const reported = (responseBody as unknown as { properties?: { reported?: unknown } }).properties?.reported;
        return typeof reported === 'object' && reported !== null ? (reported as Record<string, unknown>) : {};
      } catch (err) {
        throw new VerifierError(`cannot read the twin of ${deviceId}: ${describeError(err)}`, { cause: err });
      }
    },
  };
}

/**
 * A method's answer as IoT Hub returns it, `{ status, payload }`: azure-iothub types it `any`, so
 * its status is checked before the verdicts read it.
 */
function methodAnswer(result: unknown): { status: number; payload: unknown } {
  if (typeof result !== 'object' || result === null || !('status' in result) || typeof result.status !== 'number') {
    throw new Error(`the hub's answer has no numeric status: ${JSON.stringify(result)?.slice(0, 300)}`);
  }
  return { status: result.status, payload: 'payload' in result ? result.payload : undefined };
}

/** The `message` of a method's answer payload, for errors and verdicts (short, and never a whole payload). */
export function messageOf(payload: unknown): string {
  const message = typeof payload === 'object' && payload !== null ? (payload as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message.slice(0, 300) : JSON.stringify(payload ?? null).slice(0, 300);
}
