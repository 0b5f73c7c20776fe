import type { ChildMessage } from './child-message.js';
import { serializeError } from './serialized-error.js';

/**
 * A helper's side of runChild: takes the one request from the IPC channel, runs `serve`,
 * sends its progress events and its outcome (a failure as its serialized error), and exits.
 * When the parent goes away, the helper goes too.
 */
export function serveChild(program: string, serve: (request: unknown, progress: (event: unknown) => void) => Promise<unknown>): void {
  if (!process.send) {
    process.stderr.write(`iot-agent: ${program} is started by the agent itself\n`);
    process.exit(2);
  }
  process.once('disconnect', () => process.exit(1));
  process.once('message', (request: unknown) => {
    void serve(request, (event) => void send({ kind: 'progress', event })).then(
      (result) => finish({ kind: 'done', result }, 0),
      (err: unknown) => finish({ kind: 'failed', error: serializeError(err) }, 1),
    );
  });
}

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) resolve();
    else process.send!(message, () => resolve());
  });
}

async function finish(message: ChildMessage, code: number): Promise<void> {
  await send(message);
  process.exit(code);
}
