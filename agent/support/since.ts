import { AgentError, ExitCode } from '../lib/errors.js';

const UNIT_SECONDS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;
/** The journal keeps weeks at most; a bundle of more is never what anyone needs. */
export const MAX_SINCE_SECONDS = 31 * 86_400;
export const DEFAULT_SINCE = '24h';
export const SINCE_PATTERN = /^(\d{1,7}[smhd]){1,4}$/;

/** `--since` / `since`: a duration such as 24h, 90m, 2d or 1h30m, as seconds. */
export function parseSince(text: string): number {
  const hint = 'a duration such as 24h, 90m, 2d or 1h30m (s, m, h, d), at most 31d';
  if (!SINCE_PATTERN.test(text)) throw new AgentError(`invalid duration ${JSON.stringify(text)}`, { hint, exitCode: ExitCode.usage });
  let seconds = 0;
  for (const [, count, unit] of text.matchAll(/(\d+)([smhd])/g)) seconds += Number(count) * UNIT_SECONDS[unit as keyof typeof UNIT_SECONDS];
  if (seconds < 1 || seconds > MAX_SINCE_SECONDS) {
    throw new AgentError(`duration ${JSON.stringify(text)} is out of range`, { hint, exitCode: ExitCode.usage });
  }
  return seconds;
}
