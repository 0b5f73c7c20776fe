import deviceMqtt from 'azure-iot-device-mqtt';
import { sharedSecureContext } from '../lib/tls-context.js';
import { sdkMqtt, sdkMqttBase } from './sdk-modules.js';

const { Mqtt, MqttWs } = deviceMqtt;

type AuthenticationProvider = ConstructorParameters<typeof Mqtt>[0];
export type HubTransportCtor = new (authenticationProvider: AuthenticationProvider) => InstanceType<typeof Mqtt>;

/**
 * The SDK's MQTT transport for a hub session (`Mqtt` over 8883, `MqttWs` over WebSockets on
 * 443), for Client.fromAuthenticationProvider, whose connections trust `ca` through one
 * shared TLS context (agent/lib/tls-context.ts). Handed `ca` as an option, the SDK passes
 * it to mqtt.js and Node builds a context for every connect: a board's RSS stepped up by
 * some 10 MB at every outage. The seam is the SDK's own: its transports take an MqttBase,
 * and MqttBase takes the mqtt.js it connects with. Without `ca`, Node's default context is
 * shared already.
 */
export function hubTransport(webSockets: boolean, ca: string | undefined): HubTransportCtor {
  const Transport = webSockets ? MqttWs : Mqtt;
  if (ca === undefined) return Transport;
  const mqtt = sdkMqtt();
  const { MqttBase } = sdkMqttBase();
  const provider = {
    connect(uri: string, options: Record<string, unknown>): unknown {
      const secureContext = sharedSecureContext(ca);
      // The context replaces `ca`; over WebSockets mqtt.js hands ws only wsOptions.
      const wsOptions = { ...(options.wsOptions as Record<string, unknown> | undefined), secureContext };
      return mqtt.connect(uri, { ...options, ca: undefined, secureContext, wsOptions });
    },
  };
  return class extends Transport {
    constructor(authenticationProvider: AuthenticationProvider) {
      super(authenticationProvider, new MqttBase(provider) as ConstructorParameters<typeof Mqtt>[1]);
    }
  };
}
