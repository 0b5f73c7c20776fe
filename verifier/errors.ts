import { AgentError, ExitCode } from '../agent/lib/errors.js';

/** A verification that could not be carried out (unlike a check that failed, which is a verdict). */
export class VerifierError extends AgentError {
  static override readonly errorName: string = 'VerifierError';

  constructor(message: string, options: { cause?: unknown; hint?: string; usage?: boolean } = {}) {
    super(message, { ...options, exitCode: options.usage ? ExitCode.usage : ExitCode.failure });
  }
}
