import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DEFAULT_CONFIG_PATH, DEFAULTS, loadConfig, type AgentConfig } from '../config.js';
import { describeError } from '../lib/errors.js';
import { salvageConfig } from './config-salvage.js';
import { fail, pass, warn, type CheckResult } from './result.js';

export interface ConfigOutcome {
  result: CheckResult;
  /** The config the other checks use: the file's, or its usable part over the defaults. */
  config: AgentConfig;
}

/**
 * Loads the config as the agent does. An invalid or unreadable file fails this check
 * but does not stop the others: they run with the file's valid keys over the built-in
 * defaults (what a board usually has), and this check's message says which keys were not used.
 */
export async function checkConfig(path: string | undefined): Promise<ConfigOutcome> {
  const source = path ?? DEFAULT_CONFIG_PATH;
  try {
    const config = await loadConfig(path);
    return { result: describeValidConfig(config, source, existsSync(source)), config };
  } catch (err) {
    const text = await readFile(source, 'utf8').catch(() => undefined);
    const salvaged = text === undefined ? { config: structuredClone(DEFAULTS), ignored: [] } : salvageConfig(text, source);
    return { result: describeInvalidConfig(describeError(err), source, salvaged.ignored, text !== undefined), config: salvaged.config };
  }
}

export function describeValidConfig(config: AgentConfig, source: string, fileExists: boolean): CheckResult {
  const where = fileExists ? `${source} is valid` : `no config file at ${source} (built-in defaults)`;
  if (config.provisioning.idScope === undefined) {
    return warn('config', `${where}; provisioning.idScope is missing: the device cannot provision`,
      `set provisioning.idScope in ${source} to the ID scope of your DPS instance (Azure portal, DPS overview)`);
  }
  return pass('config', `${where} (ID scope ${config.provisioning.idScope}, DPS ${config.provisioning.globalEndpoint})`);
}

export function describeInvalidConfig(problem: string, source: string, ignored: string[], readable: boolean): CheckResult {
  const fallback = !readable
    ? 'the other checks use the built-in defaults'
    : ignored.length > 0
      ? `the other checks use built-in defaults in place of ${ignored.join(', ')}`
      : 'the other checks use its valid keys';
  return fail('config', `${problem}; ${fallback}`,
    readable ? `fix ${source}: the agent does not start with an invalid config` : `pass the right file with --config, or create ${source}`);
}
