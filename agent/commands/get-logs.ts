import { defineCommand } from './command.js';

export const MAX_LOG_LINES = 500;
/**
 * Direct method payloads are limited to 128 KB, counted as the JSON that travels: stay well
 * under it. A line full of quotes, backslashes or control characters grows when encoded
 * (a control character becomes six bytes), so the budget counts encoded bytes.
 */
export const MAX_LOG_PAYLOAD_BYTES = 96 * 1024;
/** `{"lines":[],"count":500}`: what the answer holds besides the lines. */
const ENVELOPE_BYTES = Buffer.byteLength(JSON.stringify({ lines: [], count: MAX_LOG_LINES }));

/** `getLogs { lines }`: the agent's recent log lines, oldest first, bounded in count and in encoded size. */
export const getLogs = defineCommand({
  name: 'getLogs',
  args: { lines: { type: 'integer', min: 1, max: MAX_LOG_LINES, optional: true } },
  run: ({ lines }, context) => {
    const picked: string[] = [];
    let bytes = ENVELOPE_BYTES;
    // The logger keeps at most 2 KiB of each line (MAX_KEPT_CHARS), never half a character.
    for (const line of context.log.recent(lines ?? 100).reverse()) {
      bytes += Buffer.byteLength(JSON.stringify(line)) + 1; // the line as JSON, and its comma
      if (bytes > MAX_LOG_PAYLOAD_BYTES) break;
      picked.push(line);
    }
    picked.reverse();
    return { status: 200, payload: { lines: picked, count: picked.length } };
  },
});
