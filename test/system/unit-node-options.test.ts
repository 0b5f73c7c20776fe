import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI_PATH } from '../support/cli.js';
import { REPO } from './artifacts.js';

const run = promisify(execFile);

/** The V8 settings iot-agent.service gives the daemon, as systemd passes them on. */
function unitNodeOptions(): string {
  const unit = readFileSync(path.join(REPO, 'systemd/iot-agent.service'), 'utf8');
  const match = /^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(unit);
  if (!match) throw new Error('iot-agent.service sets no Environment="NODE_OPTIONS=…"');
  return match[1]!;
}

describe('the agent unit\'s NODE_OPTIONS', () => {
  it('are all taken by node (it refuses to start on one it does not allow there) and reach V8', async () => {
    const options = unitNodeOptions();
    const probe = 'const v8 = require("v8"); process.stdout.write(JSON.stringify({ limit: v8.getHeapStatistics().heap_size_limit, wasm: typeof WebAssembly }))';
    const { stdout } = await run(process.execPath, ['-e', probe], { env: { ...process.env, NODE_OPTIONS: options } });
    const seen = JSON.parse(stdout) as { limit: number; wasm: string };
    if (/--max-old-space-size=(\d+)/.test(options)) {
      expect(seen.limit).toBeLessThanOrEqual((Number(/--max-old-space-size=(\d+)/.exec(options)![1]) + 16) * 2 ** 20);
    }
    if (options.includes('--jitless')) expect(seen.wasm).toBe('undefined');
  });

  it('run the agent\'s CLI', async () => {
    const { stdout } = await run(process.execPath, [CLI_PATH, '--help'], { env: { ...process.env, NODE_OPTIONS: unitNodeOptions() } });
    expect(stdout).toContain('Usage: iot-agent');
  });
});
