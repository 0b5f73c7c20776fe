import { errorClassesIn } from '../child/serialized-error.js';
import * as childMessage from '../child/child-message.js';
import { runChild } from '../child/run-child.js';
import * as errors from '../lib/errors.js';
import type { Logger } from '../log/logger.js';
import * as proxy from '../network/proxy.js';
import * as tpmClient from '../tpm/tpm-client.js';
import * as transportSpec from '../config/transport-spec.js';
import * as transport from '../tpm/transport.js';
import { parseAssignment, parseProgressEvent, PROVISIONING_PROCESS, type RegisterRequest } from './child-protocol.js';
import * as dpsError from './dps-error.js';
import { DpsError } from './dps-error.js';
import type { DpsAssignment, RegisterOptions } from './register.js';

/** Registration normally takes seconds (DPS asks to poll every 2 s); a hung TLS handshake must not hold the TPM for ever. */
export const CHILD_TIMEOUT_MS = 180_000;

export interface ChildRegisterOptions extends RegisterOptions {
  /** Where the helper's stderr goes, one event per line. */
  log?: Logger;
  timeoutMs?: number;
  /**
   * Service time minus local time as measured so far (ServiceClock.offsetMs()): the helper
   * signs its registration tokens against it until DPS's own answers say otherwise.
   */
  clockOffsetMs?: number | undefined;
}

/** Errors that can come back: the agent's own classes, wherever registration can fail. */
const ERROR_CLASSES = errorClassesIn(errors, dpsError, proxy, transport, transportSpec, tpmClient, childMessage);

/**
 * registerWithDps in a short-lived process of its own, so that the DPS client, its HTTP
 * stack and their modules never load in the long-running daemon. Same result, same step
 * and Date callbacks, and failures rethrown here as the same error classes with all their
 * fields.
 *
 * The TPM is lent to the helper for the whole registration: this process drops its own
 * connection (swtpm serves one at a time) and holds its commands back until the helper has
 * exited; the helper opens the same TPM from its transport string and takes no TPM lock
 * (the caller holds it). Closing `options.tpm` stops the helper.
 */
export function registerInChild(options: ChildRegisterOptions): Promise<DpsAssignment> {
  const request: RegisterRequest = {
    transport: transportSpec.formatTransport(options.tpm.transport.spec),
    registrationId: options.registrationId,
    idScope: options.idScope,
    globalEndpoint: options.globalEndpoint,
    // Those not given stay undefined here, and JSON leaves them out of the request.
    ca: options.ca,
    identityKeyHandle: options.identityKeyHandle,
    clockOffsetMs: options.clockOffsetMs,
    ...(options.proxy ? { proxy: { url: options.proxy.url, source: options.proxy.source } } : {}),
  };
  return options.tpm.lend((signal) => runChild({
    entry: 'provisioning/child-main.js',
    name: PROVISIONING_PROCESS,
    request,
    timeoutMs: options.timeoutMs ?? CHILD_TIMEOUT_MS,
    signal,
    ...(options.log ? { log: options.log } : {}),
    errorClasses: ERROR_CLASSES,
    onProgress: (event) => {
      const progress = parseProgressEvent(event);
      if ('step' in progress) options.onStep?.(progress.step, progress.detail);
      else options.onDate?.(progress.date, progress.sentAt, progress.receivedAt);
    },
    parseResult: parseAssignment,
    failure: (message, more) => new DpsError(message, { retryable: true, operatorMustAct: false }, {
      ...more, ...(message.includes('did not finish') ? { hint: 'check the network path to DPS (a proxy or firewall holding the connection open)' } : {}),
    }),
  }));
}
