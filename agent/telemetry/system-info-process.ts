import { jsonObject } from '../child/child-message.js';
import { runChild } from '../child/run-child.js';
import { errorClassesIn } from '../child/serialized-error.js';
import * as errors from '../lib/errors.js';
import type { Logger } from '../log/logger.js';

/** Its probes give up after 5 s each; this bounds the whole answer. */
const TIMEOUT_MS = 20_000;

/**
 * getSystemInfo's answer: the device's facts from systeminformation, gathered in a helper
 * process so that the library never loads in the daemon, plus the daemon's own figures.
 */
export async function systemInfoInChild(log?: Logger): Promise<Record<string, unknown>> {
  const facts = await runChild({
    entry: 'telemetry/system-info-main.js',
    name: 'the system information process',
    request: {},
    timeoutMs: TIMEOUT_MS,
    ...(log ? { log } : {}),
    errorClasses: errorClassesIn(errors),
    parseResult: (result) => jsonObject(result, 'the system information'),
    failure: (message, options) => new errors.AgentError(message, options),
  });
  const memory = process.memoryUsage();
  return {
    ...facts,
    agent: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
  };
}
