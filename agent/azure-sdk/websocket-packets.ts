import { sdkWs } from './sdk-modules.js';

let wholePackets = false;

/**
 * One WebSocket message per MQTT packet, by wrapping the SDK's ws `createWebSocketStream`.
 * mqtt.js writes a packet in pieces between a cork and an uncork (mqtt-packet), but the
 * stream ws makes has no `_writev`, so each piece goes out as a frame of its own, the next
 * only once the last was written. Through a proxy with Nagle's algorithm on its side
 * (tinyproxy, and Node-based proxies), every piece after the first then waits for a delayed
 * ACK: some 40 ms on each method answer. With `_writev` the pieces of a packet leave as one
 * frame. Installed once per process, before the first MqttWs client connects; mqtt.js looks
 * the function up on each connection.
 */
export function sendWholePacketsOverWebSockets(): void {
  if (wholePackets) return;
  wholePackets = true;
  const ws = sdkWs();
  const create = ws.createWebSocketStream.bind(ws);
  ws.createWebSocketStream = (socket, options) => {
    const duplex = create(socket, options);
    duplex._writev = function writeWhole(chunks, done) {
      this._write(Buffer.concat(chunks.map((c) => (Buffer.isBuffer(c.chunk) ? c.chunk : Buffer.from(c.chunk as string, c.encoding)))), 'buffer' as BufferEncoding, done);
    };
    return duplex;
  };
}
