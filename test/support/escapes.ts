import { expect } from 'vitest';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';

/**
 * Collects the errors thrown out of event handlers (socket callbacks, timers) from now until
 * stop(): they reach no test's promise, and would otherwise only fail the run as a whole.
 */
export function watchEscapes(): { readonly errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onEscape = (err: unknown) => errors.push(err);
  process.on('uncaughtException', onEscape);
  return { errors, stop: () => process.off('uncaughtException', onEscape) };
}

/** The TpmUnavailableError `promise` fails with, once late socket events had their turn to escape. */
export async function unavailableWithoutEscapes(promise: Promise<unknown>, escapes: { readonly errors: unknown[] }): Promise<TpmUnavailableError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(escapes.errors).toEqual([]);
  expect(err).toBeInstanceOf(TpmUnavailableError);
  return err as TpmUnavailableError;
}
