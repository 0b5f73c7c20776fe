import { exitCodeOf, oneLine } from '../lib/errors.js';

/**
 * Runs a command's action: failures become one line on stderr and the error's exit code,
 * never a stack trace. The process then exits, so a stray socket cannot keep a
 * technician's terminal waiting.
 */
export async function runAction(action: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await action()) ?? 0;
  } catch (err) {
    process.stderr.write(`iot-agent: ${oneLine(err)}\n`);
    code = exitCodeOf(err);
  }
  process.exit(code);
}
