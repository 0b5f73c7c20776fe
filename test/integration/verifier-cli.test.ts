import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringMatching } from '../support/matchers.js';

const CLI = path.resolve('dist/verifier/cli.js');
const HUB = 'HostName=127.0.0.9;SharedAccessKeyName=iothubowner;SharedAccessKey=' + Buffer.alloc(32, 7).toString('base64');
let dir: string;

function verify(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, IOTHUB_CONNECTION_STRING: '', DPS_CONNECTION_STRING: '', XDG_STATE_HOME: dir, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
  });
}

/** iot-agent-verify's usage errors: one line, a hint, exit 2, and nothing sent anywhere. */
describe('iot-agent-verify usage', () => {
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-verify-usage-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints its help and exits 0', async () => {
    const result = await verify(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/--device <id>[\s\S]*--golden <file>[\s\S]*--json/);
  });

  it.each([
    ['no device', [], /required option '--device <id>'/],
    ['a PCR the OS may not use', ['--device', 'd', '--pcr', '3'], /expected a PCR from 8 to 15/],
    ['a timeout out of range', ['--device', 'd', '--timeout', '1'], /whole seconds from 5 to 300/],
  ])('exits 2 for %s', async (_what, args, message) => {
    const result = await verify(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('exits 2 with a hint when no hub connection string is given, or it is not one', async () => {
    const none = await verify(['--device', 'd']);
    expect(none).toMatchObject({ code: 2, stderr: stringMatching(/^iot-agent-verify: no IoT Hub connection string \(hint: give --hub-connection-string or set IOTHUB_CONNECTION_STRING\)\n$/) });
    const bad = await verify(['--device', 'd', '--hub-connection-string', 'nonsense']);
    expect(bad).toMatchObject({ code: 2, stderr: stringMatching(/^iot-agent-verify: the IoT Hub connection string is not usable/) });
  });

  it('exits 2 before asking the board when its AK is not bound and no EK is given', async () => {
    const result = await verify(['--device', 'd'], { IOTHUB_CONNECTION_STRING: HUB });
    expect(result).toMatchObject({ code: 2, stderr: stringMatching(/^iot-agent-verify: d has no bound attestation key yet \(hint: give the enrolled EK/) });
  });

  it('exits 2 for an unreadable golden file and an EK file without a key', async () => {
    writeFileSync(path.join(dir, 'golden.json'), '{"sha256": {"9": "00"}}');
    writeFileSync(path.join(dir, 'ek.txt'), 'hello');
    expect(await verify(['--device', 'd', '--golden', path.join(dir, 'golden.json')], { IOTHUB_CONNECTION_STRING: HUB }))
      .toMatchObject({ code: 2, stderr: stringMatching(/golden file .*golden.json: "9" is not a boot PCR/) });
    expect(await verify(['--device', 'd', '--ek', path.join(dir, 'ek.txt')], { IOTHUB_CONNECTION_STRING: HUB }))
      .toMatchObject({ code: 2, stderr: stringMatching(/ek.txt: no endorsement key \(base64 TPM2B_PUBLIC\) in it/) });
  });
});
