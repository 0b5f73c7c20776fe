import { HardeningRequestError } from '../hardening-bridge/refusal.js';
import { PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../lib/validate.js';
import { CommandFailure, defineCommand } from './command.js';

/** `applyHardening { profile, confirmTimeoutSec }`: a confirmed transaction; the result is reported when done. */
export const applyHardening = defineCommand({
  name: 'applyHardening',
  args: {
    profile: { type: 'string', pattern: PROFILE_NAME, maxLength: 64, expected: PROFILE_NAME_EXPECTED },
    confirmTimeoutSec: { type: 'integer', min: 5, max: 3600, optional: true },
  },
  exclusive: true,
  run: ({ profile, confirmTimeoutSec }, context) => {
    const timeout = confirmTimeoutSec ?? 60;
    return {
      status: 202,
      payload: { accepted: true, message: `applying profile ${profile}, confirming within ${timeout} s`, profile, confirmTimeoutSec: timeout },
      followUp: context.hardening.apply(profile, timeout).then((report) => {
        if (report.rolledBack) return { status: 500, payload: { message: `profile ${profile} was rolled back: ${report.reason ?? 'no reason recorded'}`, report } };
        return { status: 200, payload: { message: `profile ${profile} applied${report.confirmed ? ' and confirmed' : ''}`, report } };
      }, (err: unknown) => {
        if (err instanceof CommandFailure) throw err;
        if (err instanceof HardeningRequestError) throw new CommandFailure(err.status, err.message);
        throw new CommandFailure(500, `profile ${profile} not applied: ${(err as Error).message}`);
      }),
    };
  },
});
