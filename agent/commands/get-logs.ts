import { defineCommand } from './command.js';

export const MAX_LOG_LINES = 500;
/** Direct method payloads are limited to 128 KiB: stay well under it. */
const MAX_LOG_BYTES = 96 * 1024;
const MAX_LINE_CHARS = 2048;

/** `getLogs { lines }`: the agent's recent log lines, oldest first, bounded in count and size. */
export const getLogs = defineCommand({
  name: 'getLogs',
  summary: `the agent's recent log lines (1 to ${MAX_LOG_LINES}, default 100)`,
  args: { lines: { type: 'integer', min: 1, max: MAX_LOG_LINES, optional: true } },
  run: async ({ lines }, context) => {
    const picked: string[] = [];
    let bytes = 0;
    for (const line of context.log.recent(lines ?? 100).reverse()) {
      const clipped = line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}...` : line;
      bytes += Buffer.byteLength(clipped) + 4;
      if (bytes > MAX_LOG_BYTES) break;
      picked.push(clipped);
    }
    picked.reverse();
    return { status: 200, payload: { lines: picked, count: picked.length } };
  },
});
