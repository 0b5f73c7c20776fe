import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { ChildMessageError } from '../../agent/child/child-message.js';
import { runChild, type ChildOptions } from '../../agent/child/run-child.js';
import { serializeError } from '../../agent/child/serialized-error.js';
import { AgentError } from '../../agent/lib/errors.js';
import { objectContaining } from '../support/matchers.js';
import { capturingLogger } from './command-context.js';

/**
 * runChild against a real helper process: stand-in-helper.mjs does what its request lists
 * (send messages, write stderr, exit, hang), so each test decides what the parent sees.
 */
const HELPER = '../test/unit/stand-in-helper.mjs';
type Step = { stderr: string } | { send: unknown } | { report: true } | { exit: number } | { signal: string } | { hang: true };

class StandInError extends AgentError {
  static override readonly errorName: string = 'StandInError';
}

/** What `failure` was asked to make, kept as it was given. */
class Failure extends Error {
  constructor(message: string, readonly more: { cause?: unknown; hint?: string }) {
    super(message);
  }
}

function run(steps: Step[], options: Partial<ChildOptions<unknown>> = {}): Promise<unknown> {
  return runChild({
    entry: HELPER, name: 'the stand-in', request: { steps }, timeoutMs: 25_000, errorClasses: [StandInError],
    parseResult: (result) => ({ parsed: result }), failure: (message, more) => new Failure(message, more), ...options,
  });
}

const failureOf = (promise: Promise<unknown>) => promise.then(() => expect.unreachable('it resolved'), (err: unknown) => err);

describe('a helper process that answers', () => {
  it('resolves with its result as parseResult made it, after handing each progress event over in order', async () => {
    const events: unknown[] = [];
    const result = await run([
      { send: { kind: 'progress', event: 1 } }, { send: { kind: 'progress', event: { step: 'two' } } }, { send: { kind: 'done', result: { hub: 'h' } } },
    ], { onProgress: (event) => events.push(event) });
    expect(result).toEqual({ parsed: { hub: 'h' } });
    expect(events).toEqual([1, { step: 'two' }]);
  });

  it('rejects with its failure rebuilt as the class of that name, fields and all', async () => {
    const sent = new StandInError('no TPM here', { hint: 'plug one in' });
    const err = await failureOf(run([{ send: { kind: 'failed', error: serializeError(sent) } }]));
    expect(err).toBeInstanceOf(StandInError);
    expect(err).toMatchObject({ message: 'no TPM here', hint: 'plug one in' });
  });

  it('leaves no listener on the caller\'s signal once it is done', async () => {
    const controller = new AbortController();
    // Progress that no one asked for is dropped.
    expect(await run([{ send: { kind: 'progress', event: 1 } }, { send: { kind: 'done', result: 1 } }], { signal: controller.signal })).toEqual({ parsed: 1 });
    expect(getEventListeners(controller.signal, 'abort')).toEqual([]);
    await failureOf(run([{ exit: 0 }], { signal: controller.signal }));
    expect(getEventListeners(controller.signal, 'abort')).toEqual([]);
  });
});

describe('a helper process that ends without answering', () => {
  it('fails with its exit code and its last stderr line, and logs the first 50 lines it wrote', async () => {
    const { log, lines } = capturingLogger();
    const written = Array.from({ length: 60 }, (_, i) => `line ${i + 1}\n`).join('');
    const err = await failureOf(run([{ stderr: written }, { exit: 3 }], { log }));
    expect(err).toBeInstanceOf(Failure);
    expect(err).toMatchObject({ message: 'the stand-in ended before answering (exit code 3): line 60', more: {} });
    expect(lines).toHaveLength(50);
    expect(lines[0]).toMatch(/^level=warn event=child\.output child="the stand-in" pid=\d+ line="line 1"$/);
    expect(lines[49]).toMatch(/ line="line 50"$/);
  });

  it('cuts a long stderr line to 500 characters, in the log and in the failure', async () => {
    const { log, lines } = capturingLogger();
    const err = await failureOf(run([{ stderr: `${'x'.repeat(600)}\n` }, { exit: 1 }], { log }));
    expect((err as Error).message).toBe(`the stand-in ended before answering (exit code 1): ${'x'.repeat(500)}`);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ line=x{500}$/);
  });

  it('names the signal that ended it, and its last line when it wrote one (with no log to write them to)', async () => {
    expect(await failureOf(run([{ signal: 'SIGTERM' }]))).toMatchObject({ message: 'the stand-in ended before answering (signal SIGTERM)' });
    expect(await failureOf(run([{ stderr: 'first\nlast\n' }, { signal: 'SIGTERM' }]))).toMatchObject({
      message: 'the stand-in ended before answering (signal SIGTERM): last',
    });
  });

  it('is not there: fails saying so, with the hint to reinstall, and starts nothing', async () => {
    const err = await failureOf(run([], { entry: 'nowhere/absent.js' }));
    expect(err).toMatchObject({
      message: 'the helper program nowhere/absent.js is missing from this installation', more: { hint: 'reinstall iot-agent (or run npm run build)' },
    });
  });

  it('cannot be started: fails saying so, with the cause', async () => {
    const node = process.execPath;
    process.execPath = '/nonexistent/node';
    let err: unknown;
    try {
      err = await failureOf(run([{ send: { kind: 'done', result: 1 } }]));
    } finally {
      process.execPath = node;
    }
    expect(err).toMatchObject({ message: 'could not start the stand-in', more: { cause: objectContaining({ code: 'ENOENT' }) } });
  });
});

describe('a helper process that overruns or is stopped', () => {
  it('is killed when it overruns the time, even ignoring SIGTERM, and even after answering', async () => {
    const err = await failureOf(run([{ send: { kind: 'done', result: 1 } }, { hang: true }], { timeoutMs: 1_500 }));
    expect(err).toMatchObject({ message: 'the stand-in did not finish within 2 s', more: {} });
    const failed = await failureOf(run([{ send: { kind: 'failed', error: serializeError(new StandInError('late')) } }, { hang: true }], { timeoutMs: 1_500 }));
    expect(failed).toMatchObject({ message: 'the stand-in did not finish within 2 s' });
  });

  it('is killed when the caller\'s signal aborts, or at once when it already had', async () => {
    const controller = new AbortController();
    const err = await failureOf(run([{ send: { kind: 'progress', event: 'started' } }, { hang: true }], {
      signal: controller.signal, onProgress: () => controller.abort(),
    }));
    expect(err).toMatchObject({ message: 'the stand-in was stopped', more: {} });
    expect(await failureOf(run([{ send: { kind: 'done', result: 1 } }], { signal: AbortSignal.abort() }))).toMatchObject({ message: 'the stand-in was stopped' });
  });
});

describe('a helper process that breaks the protocol', () => {
  it('is stopped at a malformed message, which is the failure', async () => {
    const err = await failureOf(run([{ send: { kind: 'shout' } }, { hang: true }]));
    expect(err).toBeInstanceOf(ChildMessageError);
    expect((err as Error).message).toBe('unknown message kind "shout"');
  });

  it('is stopped at an event or a result the caller refuses, with the caller\'s reason under the helper\'s name', async () => {
    const event = await failureOf(run([{ send: { kind: 'progress', event: 7 } }, { hang: true }], {
      onProgress: () => { throw new TypeError('7 is no event'); },
    }));
    expect(event).toBeInstanceOf(ChildMessageError);
    expect((event as Error).message).toBe('the stand-in: 7 is no event');
    const result = await failureOf(run([{ send: { kind: 'done', result: 7 } }, { hang: true }], {
      parseResult: () => { throw new ChildMessageError('7 is no result'); },
    }));
    expect(result).toBeInstanceOf(ChildMessageError);
    expect((result as Error).message).toBe('7 is no result');
  });
});

describe('the helper process\'s node settings', () => {
  const savedArgv = process.execArgv;
  const savedOptions = process.env.NODE_OPTIONS;
  afterEach(() => {
    process.execArgv = savedArgv;
    if (savedOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = savedOptions;
  });

  it('are this process\'s warning flags alone, and its NODE_OPTIONS without the V8 memory settings', async () => {
    process.execArgv = ['--no-warnings', '--stack-size=900', '--disable-warning=DEP0005', '--title=x--no-warnings', '--no-deprecation', '--max-old-space-size=64'];
    process.env.NODE_OPTIONS = '--max-semi-space-size=1 --trace-exit --jitless';
    const { log } = capturingLogger();
    expect(await run([{ report: true }], { log })).toEqual({
      parsed: { execArgv: ['--no-warnings', '--disable-warning=DEP0005', '--no-deprecation'], nodeOptions: '--trace-exit' },
    });
  });
});
