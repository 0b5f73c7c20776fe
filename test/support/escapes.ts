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
