import { defineCommand } from './command.js';

export const MAX_LOG_LINES = 500;
/** Direct method payloads are limited to 128 KiB: stay well under it. */
const MAX_LOG_BYTES = 96 * 1024;

/** `getLogs { lines }`: the agent's recent log lines, oldest first, bounded in count and size. */
export const getLogs = defineCommand({
  name: 'getLogs',
  summary: `the agent's recent log lines (1 to ${MAX_LOG_LINES}, default 100)`,
  args: { lines: { type: 'integer', min: 1, max: MAX_LOG_LINES, optional: true } },
  run: async ({ lines }, context) => {
    const picked: string[] = [];
    let bytes = 0;
    // The logger keeps at most 2 KiB of each line.
    for (const line of context.log.recent(lines ?? 100).reverse()) {
      bytes += Buffer.byteLength(line) + 4;
      if (bytes > MAX_LOG_BYTES) break;
      picked.push(line);
    }
    picked.reverse();
    return { status: 200, payload: { lines: picked, count: picked.length } };
  },
});
