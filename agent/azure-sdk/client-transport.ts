import type { EventEmitter } from 'node:events';
import type device from 'azure-iot-device';

type Client = InstanceType<typeof device.Client>;

/**
 * The MQTT transport inside azure-iot-device's Client (`Client._transport`, an EventEmitter):
 * method requests arrive on it as `method_<name>` events and desired-property patches as
 * `twinDesiredPropertiesUpdate`; `enableTwinDesiredPropertiesUpdates(cb)` subscribes to
 * desired updates. The Client exposes none of this, and the agent needs all three.
 */
export interface MqttTransport extends EventEmitter {
  enableTwinDesiredPropertiesUpdates(done: (err?: Error) => void): void;
}

export function transportOf(client: Client): MqttTransport {
  return (client as unknown as { _transport: MqttTransport })._transport;
}
