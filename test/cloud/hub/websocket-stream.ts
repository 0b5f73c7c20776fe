import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

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
    destroy(err, done) {
      ws.terminate();
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
