import { exitCodeFor, formatHuman, formatJson } from '../check/report.js';
import { runChecks } from '../check/runner.js';
import type { RuntimeOverrides } from '../runtime-overrides.js';

export interface CheckCommandOptions {
  config?: string;
  json?: boolean;
}

/**
 * `iot-agent check`: is this device ready to provision and connect? Every finding,
 * failures included, is a line on stdout (or one JSON object), never an error on
 * stderr; the exit code is 1 when any check fails, 0 otherwise.
 */
export async function check(options: CheckCommandOptions, overrides: RuntimeOverrides): Promise<number> {
  const results = await runChecks({
    configPath: options.config,
    tpmOverride: overrides.tpmTransport,
  });
  process.stdout.write(options.json ? formatJson(results) : formatHuman(results));
  return exitCodeFor(results);
}
