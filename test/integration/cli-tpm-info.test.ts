import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { runCli } from '../support/cli.js';
import { parseObject } from '../support/json.js';
import { freePortPair } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

function expectOneCleanErrorLine(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^iot-agent: /);
  expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('iot-agent tpm info', () => {
  let swtpm: SwtpmInstance;
  beforeAll(async () => { swtpm = await SwtpmInstance.start(); });
  afterAll(async () => { await swtpm?.stop(); });

  it('prints one JSON object with what a DPS enrollment needs', async () => {
    const result = await runCli(['tpm', 'info', '--tpm', swtpm.transport, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const info = JSON.parse(result.stdout) as Record<string, unknown>;
    for (const key of ['registrationId', 'endorsementKey', 'storageRootKey', 'identityKeyPresent', 'manufacturer', 'firmwareVersion']) {
      expect(info).toHaveProperty(key);
    }
    const client = clientFor(swtpm.transport);
    const identity = await ensureIdentity(client).finally(() => client.close());
    expect(info.registrationId).toBe(identity.registrationId);
    expect(Buffer.from(info.endorsementKey as string, 'base64').equals(identity.endorsementKey)).toBe(true);
    expect(Buffer.from(info.storageRootKey as string, 'base64').equals(identity.storageRootKey)).toBe(true);
    expect(info.identityKeyPresent).toBe(false);
    expect(info.manufacturer).toBe('IBM');
  });

  it('prints a readable summary, taking the transport from IOT_AGENT_TPM', async () => {
    const result = await runCli(['tpm', 'info'], { IOT_AGENT_TPM: swtpm.transport });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^TPM +IBM \(IBM\).*firmware \d+\.\d+\.\d+\.\d+$/m);
    expect(result.stdout).toMatch(/^Registration id +[a-z2-7]{52}$/m);
    expect(result.stdout).toMatch(/^Identity key +absent: the device has not been provisioned$/m);
  });

  it('uses a configured registration id and refuses an invalid one', async () => {
    const ok = await runCli(['tpm', 'info', '--tpm', swtpm.transport, '--registration-id', 'board-17', '--json']);
    expect(parseObject(ok.stdout).registrationId).toBe('board-17');
    const bad = await runCli(['tpm', 'info', '--tpm', swtpm.transport, '--registration-id', 'Board 17']);
    expect(bad.code).toBe(2);
    expectOneCleanErrorLine(bad.stderr);
  });

  it('fails fast with one line and exit code 3 when nothing listens', async () => {
    const port = await freePortPair();
    const result = await runCli(['tpm', 'info', '--tpm', `swtpm:port=${port}`, '--json']);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    expectOneCleanErrorLine(result.stderr);
    expect(result.stderr).toContain(`swtpm 127.0.0.1:${port}`);
    expect(result.stderr).toContain('ECONNREFUSED');
  });

  it('gives up on a TPM that never answers within 15 seconds, with one line', async () => {
    const server = net.createServer((socket) => socket.resume());
    const port = await freePortPair();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      const result = await runCli(['tpm', 'info', '--tpm', `swtpm:port=${port}`], {}, 20_000);
      expect(result.code).toBe(3);
      expect(result.ms).toBeLessThan(15_000);
      expectOneCleanErrorLine(result.stderr);
      expect(result.stderr).toMatch(/no answer to TPM2_ReadPublic within \d+ ms/);
    } finally {
      server.close();
    }
  }, 25_000);

  it('rejects a malformed transport with exit code 2 and the accepted forms', async () => {
    const result = await runCli(['tpm', 'info', '--tpm', 'swtpm:port=http']);
    expect(result.code).toBe(2);
    expectOneCleanErrorLine(result.stderr);
    expect(result.stderr).toContain('accepted forms: device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321, mssim:host=127.0.0.1,port=2321');
  });

  it('answers an unknown option with exit code 2', async () => {
    const result = await runCli(['tpm', 'info', '--frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option '--frobnicate'");
  });
});

describe('iot-agent tpm info with a config file', () => {
  let swtpm: SwtpmInstance;
  let dir: string;
  beforeAll(async () => {
    swtpm = await SwtpmInstance.start();
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-config-'));
  });
  afterAll(async () => {
    await swtpm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes the transport and registration id from the config file', async () => {
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, `tpm:\n  transport: ${swtpm.transport}\nprovisioning:\n  registrationId: from-config\n`);
    const result = await runCli(['--config', file, 'tpm', 'info', '--json'], { IOT_AGENT_TPM: '' });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toMatchObject({ registrationId: 'from-config', transport: swtpm.transport });
  });

  it('stops at an invalid config with exit code 2 and one line naming the key', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'tpm:\n  transprot: device\n');
    const result = await runCli(['--config', file, 'tpm', 'info']);
    expect(result.code).toBe(2);
    expectOneCleanErrorLine(result.stderr);
    expect(result.stderr).toContain('tpm.transprot: unknown key (did you mean tpm.transport?)');
  });
});
