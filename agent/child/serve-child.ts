import type { ChildMessage } from './child-message.js';
import { serializeError } from './serialized-error.js';

/** What a helper needs of its process: the IPC channel to its parent, its stderr and its exit. */
export interface ParentChannel {
  /** Absent without an IPC channel: the helper was not started by runChild. */
  send?(message: ChildMessage, callback: (error: Error | null) => void): boolean;
  once(event: 'message' | 'disconnect', listener: (request: unknown) => void): unknown;
  stderr: { write(text: string): unknown };
  exit(code: number): void;
}

/**
 * A helper's side of runChild: takes the one request from the IPC channel, runs `serve`,
 * sends its progress events and its outcome (a failure as its serialized error), and exits.
 * When the parent goes away, the helper goes too.
 */
export function serveChild(
  program: string,
  serve: (request: unknown, progress: (event: unknown) => void) => Promise<unknown>,
  parent: ParentChannel = process,
): void {
  if (!parent.send) {
    parent.stderr.write(`iot-agent: ${program} is started by the agent itself\n`);
    parent.exit(2);
    return;
  }
  // A message sent after the parent went away is dropped: the callback gets the error.
  const post = (message: ChildMessage) => new Promise<void>((resolve) => parent.send!(message, () => resolve()));
  const finish = async (message: ChildMessage, code: number) => {
    await post(message);
    parent.exit(code);
  };
  parent.once('disconnect', () => parent.exit(1));
  parent.once('message', (request) => {
    void serve(request, (event) => void post({ kind: 'progress', event })).then(
      (result) => finish({ kind: 'done', result }, 0),
      (err: unknown) => finish({ kind: 'failed', error: serializeError(err) }, 1),
    );
  });
}
