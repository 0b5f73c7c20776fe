import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI_PATH } from '../support/cli.js';
import { unitNodeFlags } from '../support/unit-node-flags.js';
import { REPO } from './artifacts.js';

const run = promisify(execFile);

const unit = () => unitNodeFlags(readFileSync(path.join(REPO, 'systemd/iot-agent.service'), 'utf8'));

/** The V8 settings iot-agent.service gives the daemon in its environment, as systemd passes them on. */
function unitNodeOptions(): string {
  const { nodeOptions } = unit();
  if (nodeOptions.length === 0) throw new Error('iot-agent.service sets no Environment="NODE_OPTIONS=…"');
  return nodeOptions.join(' ');
}

describe('the agent unit\'s NODE_OPTIONS', () => {
  it('are all taken by node (it refuses to start on one it does not allow there) and reach V8', async () => {
    const options = unitNodeOptions();
    const probe = 'const v8 = require("v8"); process.stdout.write(JSON.stringify({ limit: v8.getHeapStatistics().heap_size_limit, wasm: typeof WebAssembly, gc: typeof gc }))';
    const { stdout } = await run(process.execPath, ['-e', probe], { env: { ...process.env, NODE_OPTIONS: options } });
    const seen = JSON.parse(stdout) as { limit: number; wasm: string; gc: string };
    if (/--max-old-space-size=(\d+)/.test(options)) {
      expect(seen.limit).toBeLessThanOrEqual((Number(/--max-old-space-size=(\d+)/.exec(options)![1]) + 16) * 2 ** 20);
    }
    if (options.includes('--jitless')) expect(seen.wasm).toBe('undefined');
    // The daemon's heap trim runs only with node's gc (agent/daemon/heap-trim.ts).
    expect(seen.gc).toBe('function');
  });

  it('run the agent\'s CLI, with the flags on ExecStart\'s node command line if it has any', async () => {
    const { stdout } = await run(process.execPath, [...unit().execStart, CLI_PATH, '--help'], { env: { ...process.env, NODE_OPTIONS: unitNodeOptions() } });
    expect(stdout).toContain('Usage: iot-agent');
  });
});
