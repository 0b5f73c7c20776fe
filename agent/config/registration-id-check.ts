import { AgentError, ExitCode } from '../lib/errors.js';

/**
 * DPS accepts up to 128 characters: lowercase letters, digits and - . _ :, with no special
 * character at the start or the end (DPS REST reference, Register Device).
 */
export function checkRegistrationId(id: string): string {
  if (!/^[a-z0-9]([a-z0-9\-._:]{0,126}[a-z0-9])?$/.test(id)) {
    throw new AgentError(`invalid registration id ${JSON.stringify(id)}`, {
      hint: "use 1 to 128 characters of a-z, 0-9, '-', '.', '_', ':', starting and ending with a letter or digit",
      exitCode: ExitCode.usage,
    });
  }
  return id;
}
