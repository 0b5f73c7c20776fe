import device from 'azure-iot-device';
import { transportOf } from './client-transport.js';

type Client = InstanceType<typeof device.Client>;
const { DeviceMethodResponse } = device;

/** What the MQTT transport hands to method listeners (azure-iot-device's MethodMessage). */
interface MethodMessage {
  requestId: string;
  methods: { methodName: string };
  body?: Buffer;
}

/**
 * Direct methods as IoT Hub sends them, by wrapping the transport's `emit`. A method invoked
 * with a null or omitted payload arrives with an empty body (azure-iot-sdk-c PR #2097;
 * Microsoft Learn, MQTT support: requests carry "either a valid JSON or an empty body"); the
 * SDK's DeviceMethodRequest would JSON.parse('') it and answer 400 itself, so an empty body
 * becomes `null` before the SDK sees it. A method nobody registered goes to `onUnknown`,
 * which answers it through `answer` (the SDK would drop it and leave the caller to time out).
 */
export function interceptMethodRequests(client: Client, onUnknown: (methodName: string, answer: (status: number, payload: unknown) => Promise<void>) => void): void {
  const transport = transportOf(client);
  const emit = transport.emit.bind(transport);
  transport.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (typeof event !== 'string' || !event.startsWith('method_')) return emit(event, ...args);
    const message = args[0] as MethodMessage;
    if (Buffer.isBuffer(message.body) && message.body.length === 0) message.body = Buffer.from('null');
    if (transport.listenerCount(event) > 0) return emit(event, message, ...args.slice(1));
    onUnknown(message.methods.methodName, (status, payload) => new Promise<void>((resolve, reject) => {
      new DeviceMethodResponse(message.requestId, transport as never).send(status, payload, (err?: Error) => (err ? reject(err) : resolve()));
    }));
    return true;
  };
}
