import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { parseObject } from '../support/json.js';
import { freePortPair } from '../support/ports.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/swtpm.sh', import.meta.url));

describe('scripts/swtpm.sh for QA', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-qa-swtpm-')); });
  afterAll(async () => {
    await run('bash', [SCRIPT, 'stop', '--dir', dir]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts swtpm, prints the transport string, keeps the TPM across restarts and stops cleanly', async () => {
    const port = await freePortPair();
    const start = await run('bash', [SCRIPT, 'start', '--dir', dir, '--port', String(port)]);
    const transport = start.stdout.trim();
    expect(transport).toBe(`swtpm:host=127.0.0.1,port=${port}`);
    expect((await run('bash', [SCRIPT, 'start', '--dir', dir, '--port', String(port)])).stdout.trim()).toBe(transport);

    const first = parseObject((await runCli(['tpm', 'info', '--tpm', transport, '--json'])).stdout);
    expect((await run('bash', [SCRIPT, 'stop', '--dir', dir])).stdout).toContain('stopped');
    await expect(run('bash', [SCRIPT, 'status', '--dir', dir])).rejects.toMatchObject({ code: 3 });

    await run('bash', [SCRIPT, 'start', '--dir', dir, '--port', String(port)]);
    const second = parseObject((await runCli(['tpm', 'info', '--tpm', transport, '--json'])).stdout);
    expect(second.endorsementKey).toBe(first.endorsementKey);
    expect(second.keysCreated).toEqual([]);
  });

  it('rejects a bad port with exit code 2', async () => {
    await expect(run('bash', [SCRIPT, 'start', '--dir', dir, '--port', 'x'])).rejects.toMatchObject({ code: 2 });
  });
});
