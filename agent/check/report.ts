import { ExitCode } from '../lib/errors.js';
import type { CheckResult } from './result.js';

const LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' } as const;
const ID_WIDTH = 10;

/** One line per check, then a summary: no progress output, nothing on stderr. */
export function formatHuman(results: CheckResult[]): string {
  const lines = results.map((r) => {
    const hint = r.hint ? `  hint: ${r.hint}` : '';
    return singleLine(`${LABEL[r.status]}  ${r.id.padEnd(ID_WIDTH)} ${r.message}${hint}`);
  });
  return `${[...lines, summarize(results)].join('\n')}\n`;
}

/** Exactly one JSON object: {"checks":[{"id","status","message","hint"?}]}. */
export function formatJson(results: CheckResult[]): string {
  const checks = results.map(({ id, status, message, hint }) => (hint ? { id, status, message, hint } : { id, status, message }));
  return `${JSON.stringify({ checks })}\n`;
}

export function summarize(results: CheckResult[]): string {
  const count = (status: CheckResult['status']) => results.filter((r) => r.status === status).length;
  const failed = count('fail');
  const warned = count('warn');
  const verdict = failed > 0 ? 'the device is not ready' : warned > 0 ? 'nothing fails' : 'all good';
  return `${results.length} checks: ${count('pass')} passed, ${warned} warned, ${failed} failed: ${verdict}`;
}

/** 0 when nothing fails (warnings allowed), 1 otherwise: an invalid config is a failed check too. */
export function exitCodeFor(results: CheckResult[]): ExitCode {
  return results.some((r) => r.status === 'fail') ? ExitCode.failure : ExitCode.ok;
}

function singleLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
