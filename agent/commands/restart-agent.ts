import { ExitCode } from '../lib/errors.js';
import { defineCommand } from './command.js';

/** Exit code of a requested restart: systemd's Restart=on-failure starts the agent again. */
const RESTART_EXIT_CODE = ExitCode.restartRequested;

/** `restartAgent`: acknowledged, then the process exits with ExitCode.restartRequested. */
export const restartAgent = defineCommand({
  name: 'restartAgent',
  args: {},
  exclusive: true,
  run: (_args, context) => {
    context.requestRestart();
    return { status: 202, payload: { accepted: true, message: `restarting (exit code ${RESTART_EXIT_CODE})`, exitCode: RESTART_EXIT_CODE } };
  },
});
