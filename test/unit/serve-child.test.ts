import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { serveChild, type ParentChannel } from '../../agent/child/serve-child.js';
import { AgentError } from '../../agent/lib/errors.js';

/**
 * serveChild in this process, over a real IPC channel: its other end is a node process that
 * plays the parent (sends the request it is given, prints each message it gets as a JSON
 * line, and disconnects if told to). Only the helper's exit and stderr are stand-ins here:
 * this process must not end.
 */
const PARENT = `
const [request, disconnect] = process.argv.slice(1);
process.send(JSON.parse(request), () => { if (disconnect) process.disconnect(); });
process.on('message', (message) => console.log(JSON.stringify(message)));
`;

class TpmGone extends AgentError {
  static override readonly errorName: string = 'TpmGone';
}

const parents: ChildProcess[] = [];
afterEach(() => {
  for (const parent of parents.splice(0)) parent.kill('SIGKILL');
});

/** A parent that sends `request`; the channel serveChild gets, its exit code, what it wrote, and the messages the parent received. */
function parentSending(request: unknown, options: { disconnect?: boolean; ipc?: boolean } = {}) {
  const parent = spawn(process.execPath, ['-e', PARENT, JSON.stringify(request), ...(options.disconnect ? ['disconnect'] : [])], {
    stdio: ['ignore', 'pipe', 'inherit', ...(options.ipc === false ? [] : ['ipc' as const])],
  });
  parents.push(parent);
  const received: unknown[] = [];
  const lines = createInterface({ input: parent.stdout! }).on('line', (line) => received.push(JSON.parse(line)));
  const parentEnded = new Promise((resolve) => lines.once('close', resolve));
  const stderr: string[] = [];
  let exit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => { exit = resolve; });
  const channel: ParentChannel = {
    ...(parent.send ? { send: parent.send.bind(parent) } : {}),
    once: parent.once.bind(parent),
    stderr: { write: (text: string) => stderr.push(text) },
    // As process.exit would: the channel closes with the helper, and only the first exit counts.
    exit: (code) => {
      exit(code);
      if (parent.connected) parent.disconnect();
    },
  };
  return { channel, exited, stderr, received: async () => { await parentEnded; return received; } };
}

describe('a helper serving its parent\'s one request', () => {
  it('sends each progress event and then the result, and exits 0', async () => {
    const parent = parentSending({ registrationId: 'board-1' });
    serveChild('the test helper', (request, progress) => {
      progress({ step: 1 });
      progress({ step: 2 });
      return Promise.resolve({ served: request });
    }, parent.channel);
    expect(await parent.exited).toBe(0);
    expect(await parent.received()).toEqual([
      { kind: 'progress', event: { step: 1 } }, { kind: 'progress', event: { step: 2 } },
      { kind: 'done', result: { served: { registrationId: 'board-1' } } },
    ]);
    expect(parent.stderr).toEqual([]);
  });

  it('sends a failure as its serialized error, and exits 1', async () => {
    const parent = parentSending({});
    serveChild('the test helper', () => Promise.reject(new TpmGone('the TPM is gone', { hint: 'check the cable' })), parent.channel);
    expect(await parent.exited).toBe(1);
    const [answer] = await parent.received();
    expect(answer).toMatchObject({ kind: 'failed', error: { $error: 'TpmGone', message: 'the TPM is gone', fields: { hint: 'check the cable' } } });
  });

  it('exits 1 when the parent goes away before it answered', async () => {
    const parent = parentSending({}, { disconnect: true });
    serveChild('the test helper', () => new Promise(() => undefined), parent.channel);
    expect(await parent.exited).toBe(1);
  });

  it('refuses to run without a parent on an IPC channel: says so and exits 2', async () => {
    const parent = parentSending({}, { ipc: false });
    let served = false;
    serveChild('the test helper', () => { served = true; return Promise.resolve(); }, parent.channel);
    expect(await parent.exited).toBe(2);
    expect(parent.stderr).toEqual(['iot-agent: the test helper is started by the agent itself\n']);
    expect(served).toBe(false);
  });
});
