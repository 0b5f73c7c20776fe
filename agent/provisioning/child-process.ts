import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as errors from '../errors.js';
import type { Logger } from '../log/logger.js';
import { deserializeError, errorClassesIn } from '../serialized-error.js';
import * as tpmClient from '../tpm/tpm-client.js';
import * as transportSpec from '../tpm/transport-spec.js';
import * as transport from '../tpm/transport.js';
import { ChildMessageError, parseChildEvent, type RegisterRequest } from './child-protocol.js';
import * as register from './register.js';
import { DpsError, type DpsAssignment, type RegisterOptions } from './register.js';

/** Registration normally takes seconds (DPS asks to poll every 2 s); a hung TLS handshake must not hold the TPM for ever. */
export const CHILD_TIMEOUT_MS = 180_000;

/** How many of the child's stderr lines reach the log: a crash's stack, not a flood. */
const MAX_LOGGED_LINES = 50;

export interface ChildRegisterOptions extends RegisterOptions {
  /** Where the child's stderr goes, one event per line. */
  log?: Logger;
  timeoutMs?: number;
}

/** Errors that can come back from the child: the agent's own classes (built-in ones always count). */
const ERROR_CLASSES = errorClassesIn(errors, register, transport, transportSpec, tpmClient, { ChildMessageError });

/** Children still running, killed if this process exits first (their IPC channel also ends them). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * registerWithDps in a short-lived process of its own, so that the DPS client, its HTTP
 * stack and their modules never load in the long-running daemon. Same result, same step
 * callbacks, and failures rethrown here as the same error classes with all their fields.
 *
 * The TPM is lent to the child for the whole registration: this process drops its own
 * connection (swtpm serves one at a time) and holds its commands back until the child has
 * exited; the child opens the same TPM from its transport string, and takes no TPM lock
 * (the caller holds it). Closing `options.tpm` kills the child.
 */
export function registerInChild(options: ChildRegisterOptions): Promise<DpsAssignment> {
  const request: RegisterRequest = {
    kind: 'register',
    transport: transportSpec.formatTransport(options.tpm.transport.spec),
    registrationId: options.registrationId,
    idScope: options.idScope,
    globalEndpoint: options.globalEndpoint,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  };
  return options.tpm.lend((signal) => runChild(request, options, signal));
}

function runChild(request: RegisterRequest, options: ChildRegisterOptions, signal: AbortSignal): Promise<DpsAssignment> {
  const timeoutMs = options.timeoutMs ?? CHILD_TIMEOUT_MS;
  const child = fork(childEntry(), [], {
    execArgv: process.execArgv.filter((flag) => /^--(disable-warning|no-deprecation|no-warnings)\b/.test(flag)),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'json',
  });
  track(child);
  return new Promise<DpsAssignment>((resolve, reject) => {
    // What the child answered (or what was wrong with its message), and why it was stopped.
    let answer: DpsAssignment | Error | undefined;
    let stopped: string | undefined;
    let lastLine = '';
    let logged = 0;
    const stop = (why: string) => {
      stopped ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`did not finish within ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
    const onAbort = () => stop('was stopped: the TPM was taken back');
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();

    createInterface({ input: child.stderr! }).on('line', (line) => {
      lastLine = line.slice(0, 500);
      if (logged++ < MAX_LOGGED_LINES) options.log?.warn('provisioning.child_output', { pid: child.pid, line: lastLine });
    });
    child.on('message', (message: unknown) => {
      try {
        const event = parseChildEvent(message);
        if (event.kind === 'step') options.onStep?.(event.step, event.detail);
        else answer = event.kind === 'assigned' ? event.assignment : deserializeError(event.error, ERROR_CLASSES);
      } catch (err) {
        answer = err instanceof ChildMessageError ? err : new ChildMessageError(`a step callback failed: ${errors.describeError(err)}`);
        stop('sent a malformed message');
      }
    });
    child.on('error', (err) => {
      // The process could not be started; 'close' follows only when it ran.
      if (child.pid === undefined) settle(new DpsError('could not start the provisioning process', true, undefined, { cause: err }));
    });
    // 'close' comes after the exit, the last stderr line and the last message.
    child.on('close', (code, exitSignal) => {
      if (answer instanceof ChildMessageError || (answer !== undefined && stopped === undefined)) {
        settle(answer);
        return;
      }
      const why = stopped ?? `ended before answering (${exitSignal ? `signal ${exitSignal}` : `exit code ${code}`})`;
      settle(new DpsError(`the provisioning process ${why}${lastLine ? `: ${lastLine}` : ''}`, true, undefined, {
        hint: stopped?.startsWith('did not finish') ? 'check the network path to DPS (a proxy or firewall holding the connection open)' : undefined,
      }));
    });
    child.send(request, (err) => {
      if (err) stop(`could not be given its request (${err.message})`);
    });

    function settle(result: DpsAssignment | Error): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      running.delete(child);
      if (result instanceof Error) reject(result);
      else resolve(result);
    }
  });
}

function track(child: ChildProcess): void {
  running.add(child);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of running) c.kill('SIGKILL');
  });
}

/**
 * The child's entry file: beside this module in the build (dist/agent/provisioning/), at
 * dist/agent/provisioning/ seen from the bundle's chunks, or in the build when these
 * sources run directly (the test suite).
 */
function childEntry(): string {
  const candidates = ['./child-main.js', '../provisioning/child-main.js', './provisioning/child-main.js', '../../dist/agent/provisioning/child-main.js'];
  for (const relative of candidates) {
    const file = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(file)) return file;
  }
  throw new DpsError('the provisioning program (child-main.js) is missing from this installation', false, undefined, {
    hint: 'reinstall iot-agent (or run npm run build)',
  });
}
