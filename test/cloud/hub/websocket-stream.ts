import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** How long a closing WebSocket waits for the peer's close frame before the socket is cut. */
const CLOSE_GRACE_MS = 1_000;

/**
 * A WebSocket as the byte stream aedes reads and writes, one binary message per MQTT packet
 * the broker writes (mqtt-packet writes a packet in pieces between a cork and an uncork:
 * `_writev` takes them together). MQTT 3.1.1 §6 allows any split; a server that sends a
 * frame per piece makes a proxy with Nagle's algorithm hold the pieces for delayed ACKs.
 */
export function packetStream(ws: WebSocket): Duplex {
  const stream = new Duplex({
    read() {
      ws.resume();
    },
    write(chunk: Buffer, _encoding, done) {
      ws.send(chunk, { binary: true }, done);
    },
    writev(chunks, done) {
      ws.send(Buffer.concat(chunks.map((c) => c.chunk as Buffer)), { binary: true }, done);
    },
    final(done) {
      ws.close();
      done();
    },
    // The broker destroys a connection right after writing its last packet (a refusing
    // CONNACK): IoT Hub delivers that CONNACK before it closes (Learn, MQTT support,
    // "CONNACK ... 0x05 Connection refused, not authorized"), so the socket is closed
    // after what was sent has gone, and cut only on an error or when the peer never answers.
    destroy(err, done) {
      if (err) ws.terminate();
      else {
        ws.close();
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      }
      done(err);
    },
  });
  ws.on('message', (data: Buffer) => {
    if (!stream.push(data)) ws.pause();
  });
  ws.once('close', () => {
    stream.push(null);
    stream.destroy();
  });
  ws.on('error', (err) => stream.destroy(err));
  return stream;
}
