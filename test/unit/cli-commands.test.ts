import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { check } from '../../agent/cli/check.js';
import { loadTrust } from '../../agent/check/trust.js';
import { provision } from '../../agent/cli/provision.js';
import { status } from '../../agent/cli/status.js';
import { supportBundle } from '../../agent/cli/support-bundle.js';
import { tpmInfo } from '../../agent/cli/tpm-info.js';
import { serveControlSocket, type ControlHandler } from '../../agent/daemon/control-socket.js';
import type { DaemonStatus } from '../../agent/control/protocol.js';
import { runtimeOverrides } from '../../agent/runtime-overrides.js';
import { DAEMON_LOCK_OWNER, TpmLock } from '../../agent/tpm/tpm-lock.js';
import { registrationIdFromEndorsementKey } from '../../agent/tpm/registration-id.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';
import { unpackBundle } from '../support/bundle-archive.js';
import { captureOutput } from '../support/output.js';
import { freePort } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { answering, handling } from './control-handlers.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';
import { ofType, stringContaining, stringMatching } from '../support/matchers.js';

/**
 * The CLI commands' actions run in this process against a board in temporary directories:
 * its TPM a swtpm port where nothing listens, its endpoints on loopback, and, where a test
 * needs a running daemon, this process answering on the daemon's control socket.
 */
const servers: net.Server[] = [];
const stopping: SwtpmInstance[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) server.close();
  restorePath();
  for (const tpm of stopping.splice(0)) await tpm.stop();
});

async function board(extra = ''): Promise<{ configPath: string; runtimeDir: string; port: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-'));
  const configPath = path.join(dir, 'config.yaml');
  const port = await freePort();
  writeFileSync(configPath, [
    'provisioning:', '  idScope: 0ne0012ABCD', '  globalEndpoint: 127.0.0.1', 'tpm:', `  transport: swtpm:port=${port}`,
    `stateDir: ${path.join(dir, 'state')}`, `runtimeDir: ${path.join(dir, 'run')}`, extra,
  ].join('\n'));
  return { configPath, runtimeDir: path.join(dir, 'run'), port };
}

/** This process as the running daemon: it holds the TPM lock and answers on the control socket. */
async function daemonAnswering(runtimeDir: string, handle: ControlHandler): Promise<void> {
  await TpmLock.acquire(runtimeDir, DAEMON_LOCK_OWNER);
  servers.push(await serveControlSocket(runtimeDir, handle));
}

const EK = () => Buffer.from('0006000b00000000', 'hex').toString('base64');
const report = (transport: string, overrides: Partial<TpmReport> = {}): TpmReport => ({
  transport,
  endorsementKey: { ok: true, value: EK() },
  storageRootKey: { ok: true, value: 'U1JL' },
  identityKey: { ok: true, value: { type: 'KEYEDHASH' } },
  facts: {
    ok: true,
    value: { manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW   TPM', firmwareVersion: '8217.4131.22.13878', specLevel: '2.0, level 0, revision 1.64', family: '2.0', revision: '1.64' },
  },
  ...overrides,
});

const daemonStatus = (): DaemonStatus => ({
  state: 'ready', reason: 'connected to hub-a.example as board-17', since: '2026-11-26T11:00:00.000Z', pid: 4242, registrationId: 'board-17',
  deviceId: 'board-17', assignedHub: 'hub-a.example', idScope: '0ne0012ABCD', hubProtocol: 'mqtt', hubProtocolReason: null, proxy: null, lastError: null, consecutiveFailures: 0,
  nextRetryAt: null, dpsHeldOffUntil: null, operatorMustAct: false, telemetryQueue: null, clockOffsetMs: null,
});

describe('iot-agent check', () => {
  it('prints one line per check and a summary, exiting 1 when anything fails', async () => {
    const { configPath } = await board();
    const { result, stdout, stderr } = await captureOutput(() => check({ config: configPath }, {}));
    expect(result).toBe(1);
    expect(stderr).toBe('');
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(15);
    expect(lines[0]).toMatch(/^PASS {2}config {5}/);
    expect(lines[1]).toMatch(/^FAIL {2}tpm {8}TPM unreachable \(swtpm:host=127\.0\.0\.1,port=\d+\): /);
    expect(lines[14]).toMatch(/^14 checks: \d+ passed, \d+ warned, \d+ failed: the device is not ready$/);
  });

  it('prints exactly one JSON object with --json, reading the TPM named by IOT_AGENT_TPM', async () => {
    const { configPath } = await board();
    const port = await freePort();
    const overrides = runtimeOverrides({ IOT_AGENT_TPM: `swtpm:port=${port}` }, { tpmAsGiven: true });
    const { result, stdout } = await captureOutput(() => check({ config: configPath, json: true }, overrides));
    expect(result).toBe(1);
    const parsed = JSON.parse(stdout) as { checks: { id: string; message: string }[] };
    expect(parsed.checks.map((c) => c.id)).toEqual(['config', 'tpm', 'identity', 'clock', 'state', 'state-dir', 'dps-hold', 'proxy', 'dps-dns', 'dps-tls', 'hub-dns', 'hub-tls', 'hub-wss', 'hub-choice']);
    expect(parsed.checks[1]!.message).toContain(`swtpm:host=127.0.0.1,port=${port} from IOT_AGENT_TPM`);
  });
});

describe('iot-agent check with a running daemon', () => {
  it('fails when the daemon says DPS will not assign the device until an operator acts, and prints why and when it asks again', async () => {
    const { configPath, runtimeDir, port } = await board();
    const disabled = 'provisioning failed: DPS 127.0.0.1 (ID scope 0ne0012ABCD, registration board-17) ended the registration with status "disabled": the enrollment is disabled';
    await daemonAnswering(runtimeDir, handling((request, reply) => {
      if (request.op === 'tpm') reply({ event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`) });
      else reply({ event: 'status', ...daemonStatus(), state: 'degraded', operatorMustAct: true, dpsHeldOffUntil: '2099-01-01T06:00:00.000Z',
        lastError: { message: disabled, at: '2026-11-26T11:59:00.000Z' } });
    }));
    const { result, stdout } = await captureOutput(() => check({ config: configPath, json: true }, {}));
    expect(result).toBe(1);
    const checks = (JSON.parse(stdout) as { checks: { id: string; status: string; message: string; hint?: string }[] }).checks;
    expect(checks.find((c) => c.id === 'tpm')).toMatchObject({ status: 'pass', message: stringContaining('via the running daemon, pid 4242') });
    expect(checks.find((c) => c.id === 'dps-hold')).toEqual({
      id: 'dps-hold', status: 'fail', message: `DPS will not assign this device until an operator acts (daemon pid 4242): ${disabled}`,
      hint: 'an operator must enable or fix this device\'s enrollment in DPS; the daemon asks DPS again at 2099-01-01T06:00:00.000Z, or at once with `iot-agent provision`',
    });
  });
});

describe('iot-agent status', () => {
  it('prints the state files\' view when no daemon runs, as text or JSON', async () => {
    const { configPath } = await board();
    const text = await captureOutput(() => status({ config: configPath }));
    expect(text.result).toBe(0);
    expect(text.stdout).toContain('State              stopped (not provisioned)\n');
    expect(text.stdout).toContain('Daemon             not running\n');
    const json = await captureOutput(() => status({ config: configPath, json: true }));
    expect(JSON.parse(json.stdout)).toMatchObject({ daemon: 'not running', state: 'stopped', idScope: '0ne0012ABCD' });
    expect(json.stdout.endsWith('}\n')).toBe(true);
  });

  it('prints the running daemon\'s status', async () => {
    const { configPath, runtimeDir } = await board();
    await daemonAnswering(runtimeDir, answering({ event: 'status', ...daemonStatus() }));
    const { stdout } = await captureOutput(() => status({ config: configPath }));
    expect(stdout).toContain('Daemon             running (pid 4242)\n');
    expect(stdout).toContain('Hub                hub-a.example\n');
  });
});

describe('iot-agent tpm info', () => {
  it('shows what the running daemon read from its TPM, for enrolling the device', async () => {
    const { configPath, runtimeDir, port } = await board();
    const transport = `swtpm:host=127.0.0.1,port=${port}`;
    await daemonAnswering(runtimeDir, answering({ event: 'tpm', pid: 4242, ...report(transport) }));
    const { error, stdout } = await captureOutput(() => tpmInfo({ config: configPath }, {}));
    expect(error).toBeUndefined();
    const id = registrationIdFromEndorsementKey(Buffer.from('0006000b00000000', 'hex'));
    expect(stdout).toBe([
      'TPM               IBM (IBM) SW   TPM, firmware 8217.4131.22.13878',
      'Spec              2.0, level 0, revision 1.64',
      `Transport         ${transport}, via the running daemon (pid 4242)`,
      `Registration id   ${id}`,
      'Identity key      present (0x81000100)',
      `Endorsement key   ${EK()}`,
      'Storage root key  U1JL',
      '',
    ].join('\n'));
    const json = await captureOutput(() => tpmInfo({ config: configPath, json: true, registrationId: 'board-17' }, {}));
    expect(JSON.parse(json.stdout)).toEqual({
      transport, registrationId: 'board-17', endorsementKey: EK(), storageRootKey: 'U1JL', identityKeyPresent: true, keysCreated: [], viaDaemonPid: 4242,
      manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW   TPM', firmwareVersion: '8217.4131.22.13878', specLevel: '2.0, level 0, revision 1.64',
      family: '2.0', revision: '1.64',
    });
  });

  it('says an unprovisioned TPM has no identity key, and leaves out an empty vendor string', async () => {
    const { configPath, runtimeDir, port } = await board();
    const facts = { manufacturer: 'IFX', manufacturerName: 'Infineon', vendorString: '', firmwareVersion: '7.85', specLevel: '2.0', family: '2.0', revision: '1.59' };
    await daemonAnswering(runtimeDir, answering({
      event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`, { identityKey: { ok: true, value: null }, facts: { ok: true, value: facts } }),
    }));
    const { stdout } = await captureOutput(() => tpmInfo({ config: configPath }, {}));
    expect(stdout).toContain('TPM               Infineon (IFX), firmware 7.85\n');
    expect(stdout).toContain('Identity key      absent: the device has not been provisioned\n');
  });

  it('fails with the TPM\'s own words when the daemon could not read a key, as unavailable or refused', async () => {
    const { configPath, runtimeDir, port } = await board();
    let reading: TpmReport['endorsementKey'] = { ok: false, error: 'no answer within 4000 ms', refused: false, hint: 'is swtpm running?' };
    // Read at each request: the daemon's answer changes with `reading` below.
    await daemonAnswering(runtimeDir, handling((_request, reply) => reply({ event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`, { endorsementKey: reading }) })));
    const unavailable = await captureOutput(() => tpmInfo({ config: configPath }, {}));
    expect(unavailable.error).toMatchObject({ message: 'the running daemon (pid 4242) could not read the endorsement key: no answer within 4000 ms', hint: 'is swtpm running?', exitCode: 3 });
    reading = { ok: false, error: 'TPM_RC_LOCKOUT', refused: true };
    expect((await captureOutput(() => tpmInfo({ config: configPath }, {}))).error).toMatchObject({ exitCode: 1 });
    reading = { ok: true, value: null };
    expect((await captureOutput(() => tpmInfo({ config: configPath }, {}))).error).toMatchObject({
      message: 'the TPM has no EK although the daemon holds it', hint: 'restart the iot-agent service: it creates the keys again',
    });
  });

  it('opens the TPM itself when the daemon uses another one, and fails when it is not there', async () => {
    const { configPath, runtimeDir, port } = await board();
    await daemonAnswering(runtimeDir, answering({ event: 'tpm', pid: 4242, ...report('device:/dev/tpmrm0') }));
    const { error, stdout } = await captureOutput(() => tpmInfo({ config: configPath }, {}));
    expect(error).toMatchObject({ name: 'TpmUnavailableError', message: stringContaining(`127.0.0.1:${port}`), exitCode: 3 });
    expect(stdout).toBe('');
  });

  it('reads the TPM named with --tpm before IOT_AGENT_TPM and the config', async () => {
    const { configPath, runtimeDir, port } = await board();
    await daemonAnswering(runtimeDir, answering({ event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`) }));
    const [given, env] = [await freePort(), await freePort()];
    const { error } = await captureOutput(() => tpmInfo({ config: configPath, tpm: `swtpm:port=${given}` }, { tpmTransport: `swtpm:port=${env}` }));
    expect(error).toMatchObject({ message: stringContaining(`127.0.0.1:${given}`), exitCode: 3 });
    const fromEnv = await captureOutput(() => tpmInfo({ config: configPath }, { tpmTransport: `swtpm:port=${env}` }));
    expect(fromEnv.error).toMatchObject({ message: stringContaining(`127.0.0.1:${env}`), exitCode: 3 });
  });

  it('asks no one but the daemon: a TPM another command holds is opened here', async () => {
    const { configPath, runtimeDir, port } = await board();
    await TpmLock.acquire(runtimeDir, 'iot-agent provision');
    servers.push(await serveControlSocket(runtimeDir, answering({ event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`) })));
    const { error, stdout } = await captureOutput(() => tpmInfo({ config: configPath }, {}));
    expect(error).toMatchObject({ name: 'TpmUnavailableError', exitCode: 3 });
    expect(stdout).toBe('');
  });

  it('takes the registration id from the config, and names each reading the daemon could not make', async () => {
    const { configPath, runtimeDir, port } = await board();
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('  idScope: 0ne0012ABCD', '  idScope: 0ne0012ABCD\n  registrationId: board-from-config'));
    let overrides: Partial<TpmReport> = {};
    await daemonAnswering(runtimeDir, handling((_request, reply) => reply({ event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`, overrides) })));
    const json = await captureOutput(() => tpmInfo({ config: configPath, json: true }, {}));
    expect(JSON.parse(json.stdout)).toMatchObject({ registrationId: 'board-from-config', viaDaemonPid: 4242 });
    overrides = { storageRootKey: { ok: true, value: null } };
    expect((await captureOutput(() => tpmInfo({ config: configPath }, {}))).error).toMatchObject({ message: 'the TPM has no SRK although the daemon holds it', exitCode: 1 });
    overrides = { storageRootKey: { ok: false, error: 'TPM_RC_HANDLE', refused: true } };
    expect((await captureOutput(() => tpmInfo({ config: configPath }, {}))).error).toMatchObject({
      message: 'the running daemon (pid 4242) could not read the storage root key: TPM_RC_HANDLE', exitCode: 1,
    });
    overrides = { identityKey: { ok: false, error: 'no answer within 4000 ms', refused: false } };
    expect((await captureOutput(() => tpmInfo({ config: configPath }, {}))).error).toMatchObject({
      message: 'the running daemon (pid 4242) could not read the identity key: no answer within 4000 ms', exitCode: 3,
    });
    overrides = { facts: { ok: false, error: 'TPM_RC_FAILURE', refused: true } };
    expect((await captureOutput(() => tpmInfo({ config: configPath }, {}))).error).toMatchObject({
      message: 'the running daemon (pid 4242) could not read the TPM properties: TPM_RC_FAILURE', exitCode: 1,
    });
  });
});

describe('iot-agent tpm info on a TPM of its own', () => {
  it('creates and persists the EK and SRK a fresh TPM lacks, and says so once', async () => {
    const { configPath } = await board();
    const tpm = await SwtpmInstance.start();
    stopping.push(tpm);
    const first = await captureOutput(() => tpmInfo({ config: configPath, tpm: tpm.transport }, {}));
    expect(first.error).toBeUndefined();
    expect(first.stderr).toBe('');
    const json = await captureOutput(() => tpmInfo({ config: configPath, tpm: tpm.transport, json: true }, {}));
    const info = JSON.parse(json.stdout) as { endorsementKey: string; storageRootKey: string; specLevel: string; firmwareVersion: string };
    expect(info).toEqual({
      transport: tpm.transport, registrationId: registrationIdFromEndorsementKey(Buffer.from(info.endorsementKey, 'base64')),
      endorsementKey: stringMatching(/^[A-Za-z0-9+/]{300,}={0,2}$/), storageRootKey: stringMatching(/^[A-Za-z0-9+/]{300,}={0,2}$/),
      identityKeyPresent: false, keysCreated: [], viaDaemonPid: null,
      manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW   TPM', firmwareVersion: ofType(String), specLevel: stringMatching(/^2\.0, level 0, revision /),
      family: '2.0', revision: ofType(String),
    });
    const rows = [
      `TPM               IBM (IBM) SW   TPM, firmware ${info.firmwareVersion}`,
      `Spec              ${info.specLevel}`,
      `Transport         ${tpm.transport}`,
      `Registration id   ${registrationIdFromEndorsementKey(Buffer.from(info.endorsementKey, 'base64'))}`,
      'Identity key      absent: the device has not been provisioned',
    ];
    const keys = [`Endorsement key   ${info.endorsementKey}`, `Storage root key  ${info.storageRootKey}`, ''];
    expect(first.stdout).toBe([...rows, 'Created now       EK and SRK (persisted)', ...keys].join('\n'));
    const again = await captureOutput(() => tpmInfo({ config: configPath, tpm: tpm.transport, registrationId: 'board-17' }, {}));
    expect(again.stdout).toBe([...rows.slice(0, 3), 'Registration id   board-17', rows[4], ...keys].join('\n'));
  }, 60_000);
});

describe('iot-agent provision', () => {
  it('shows each step the running daemon reports, then one summary line', async () => {
    const { configPath, runtimeDir } = await board();
    const asked: unknown[] = [];
    await daemonAnswering(runtimeDir, handling((request, reply) => {
      asked.push(request);
      reply({ event: 'step', step: 'tpm', message: 'TPM ready, registration id board-17' });
      reply({ event: 'step', step: 'assigned', message: 'assigned to hub-a.example as board-17' });
      reply({ event: 'done', ...daemonStatus() });
    }));
    const { result, stdout } = await captureOutput(() => provision({ config: configPath }, {}));
    expect(asked).toEqual([{ op: 'provision', force: true }]);
    expect(result).toBe(0);
    expect(stdout).toBe('  TPM ready, registration id board-17\n  assigned to hub-a.example as board-17\nprovisioned: board-17 on hub-a.example (registration id board-17)\n');
    const json = await captureOutput(() => provision({ config: configPath, json: true }, {}));
    expect(JSON.parse(json.stdout)).toMatchObject({
      deviceId: 'board-17', assignedHub: 'hub-a.example', steps: [{ step: 'tpm', message: 'TPM ready, registration id board-17' }, { step: 'assigned', message: 'assigned to hub-a.example as board-17' }],
    });
    expect(json.stdout.split('\n')).toHaveLength(2);
  });

  it('names the step that failed, after the last one the daemon reported', async () => {
    const { configPath, runtimeDir } = await board();
    await daemonAnswering(runtimeDir, handling((_request, reply) => {
      reply({ event: 'step', step: 'challenge', message: 'DPS challenge received' });
      reply({ event: 'error', step: 'activated', message: 'TPM2_ActivateCredential failed' });
    }));
    const { error, stdout } = await captureOutput(() => provision({ config: configPath }, {}));
    expect(stdout).toBe('  DPS challenge received\n');
    expect(error).toMatchObject({ message: 'provisioning failed at step "activated"' });
    expect(((error as Error).cause as Error).message).toBe('TPM2_ActivateCredential failed');
  });

  it('says when the daemon ended the request without a result', async () => {
    const { configPath, runtimeDir } = await board();
    await daemonAnswering(runtimeDir, answering({ event: 'step', step: 'tpm', message: 'TPM ready' }));
    const { error } = await captureOutput(() => provision({ config: configPath }, {}));
    expect(error).toMatchObject({ message: 'provisioning failed at step "challenge"' });
    expect(((error as Error).cause as Error).message).toBe('the daemon ended the request without a result');
  });

  it('provisions directly when no daemon runs, and fails at the TPM step when there is no TPM, letting go of the lock', async () => {
    const { configPath, runtimeDir } = await board();
    const { error, stdout } = await captureOutput(() => provision({ config: configPath }, {}));
    expect(stdout).toBe('');
    // Exit 3, TPM unreachable, as the cause says: not a plain failure.
    expect(error).toMatchObject({ message: 'provisioning failed at step "tpm"', exitCode: 3, cause: { name: 'TpmUnavailableError' } });
    expect(await TpmLock.holder(runtimeDir)).toBeUndefined();
  });

  it('stops after the TPM step when the extra CA file cannot be used, naming it, with the hint', async () => {
    const { configPath, runtimeDir } = await board('tls:\n  extraCaFile: /nonexistent/ca.pem');
    const tpm = await SwtpmInstance.start();
    stopping.push(tpm);
    const { error, stdout } = await captureOutput(() => provision({ config: configPath, force: true }, { tpmTransport: tpm.transport }));
    expect(stdout).toMatch(/^ {2}TPM ready, registration id [a-z0-9]{52}\n$/);
    const trust = await loadTrust('/nonexistent/ca.pem');
    expect(trust.ok).toBe(false);
    expect(error).toMatchObject({ message: 'provisioning failed at step "challenge"', exitCode: 1, hint: (trust as { hint: string }).hint });
    expect(((error as Error).cause as Error).message).toBe((trust as { problem: string }).problem);
    expect(await TpmLock.holder(runtimeDir)).toBeUndefined();
  }, 60_000);

  it('shows what it does not know as ?, and --json gives the daemon\'s status with the steps', async () => {
    const { configPath, runtimeDir } = await board();
    const unknown = { ...daemonStatus(), deviceId: undefined, assignedHub: undefined, registrationId: undefined };
    await daemonAnswering(runtimeDir, answering({ event: 'done', ...unknown }));
    const { result, stdout } = await captureOutput(() => provision({ config: configPath }, {}));
    expect(result).toBe(0);
    expect(stdout).toBe('provisioned: ? on ? (registration id ?)\n');
    const json = await captureOutput(() => provision({ config: configPath, json: true }, {}));
    // JSON leaves out what is undefined.
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse(JSON.stringify({ ...unknown, steps: [] })));
    expect(JSON.parse(json.stdout)).not.toHaveProperty('deviceId');
  });

  it('says when the daemon ended the request with anything but a result', async () => {
    const { configPath, runtimeDir } = await board();
    await daemonAnswering(runtimeDir, answering({ event: 'step', step: 'tpm', message: 'TPM ready' }, { event: 'status', ...daemonStatus() }));
    const { error } = await captureOutput(() => provision({ config: configPath, json: true }, {}));
    expect(error).toMatchObject({ message: 'provisioning failed at step "challenge"', exitCode: 1 });
    expect(((error as Error).cause as Error).message).toBe('the daemon ended the request without a result');
  });

  it('refuses to start without an ID scope', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-'));
    const configPath = path.join(dir, 'config.yaml');
    writeFileSync(configPath, `stateDir: ${dir}\n`);
    const { error } = await captureOutput(() => provision({ config: configPath }, {}));
    expect(error).toMatchObject({ message: stringContaining('provisioning.idScope is missing'), exitCode: 2 });
  });
});

describe('iot-agent support-bundle', () => {
  it('bundles what the state files say when no daemon runs, naming the collectors that did not complete', async () => {
    const { configPath } = await board();
    const output = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const text = await captureOutput(() => supportBundle({ config: configPath, output, since: '1h' }, {}));
    expect(text.error).toBeUndefined();
    expect(text.result).toBe(0);
    const [first, second] = text.stdout.split('\n');
    expect(first).toMatch(new RegExp(`^${output}/iot-agent-support-.+\\.tar\\.gz$`));
    expect(second).toMatch(/^ {2}\d+ KiB, \d+ of \d+ collectors complete, daemon not running$/);
    const again = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const json = await captureOutput(() => supportBundle({ config: configPath, output: again, json: true }, {}));
    expect(json.error).toBeUndefined();
    expect(JSON.parse(json.stdout)).toMatchObject({ path: stringContaining(again), bytes: ofType(Number), daemon: 'not running', collectors: ofType(Object) });
  }, 60_000);

  it('warns, and bundles the state files, when the daemon does not give its state', async () => {
    const { configPath, runtimeDir } = await board();
    await daemonAnswering(runtimeDir, answering({ event: 'error', message: 'busy' }));
    const output = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const { stdout, stderr } = await captureOutput(() => supportBundle({ config: configPath, output }, {}));
    expect(stderr).toContain('iot-agent: warning: the daemon did not answer (the daemon refused support: busy); bundling what the state files say\n');
    expect(stdout).toContain('daemon not running');
  }, 60_000);

  it('checks the DPS hold on the daemon\'s snapshot, the one the bundle\'s status shows', async () => {
    const { configPath, runtimeDir, port } = await board();
    const asked: string[] = [];
    const held = { ...daemonStatus(), state: 'degraded' as const, operatorMustAct: true, lastError: { message: 'DPS refused the device (401)', at: '2026-11-26T11:59:00.000Z' } };
    await daemonAnswering(runtimeDir, handling((request, reply) => {
      asked.push(request.op);
      if (request.op === 'support') reply({ event: 'support', status: held, logLevel: 'info', recentLog: [], executedCommands: null });
      else if (request.op === 'tpm') reply({ event: 'tpm', pid: 4242, ...report(`swtpm:host=127.0.0.1,port=${port}`) });
      else reply({ event: 'error', message: 'not asked twice' });
    }));
    const output = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const { stdout } = await captureOutput(() => supportBundle({ config: configPath, output }, {}));
    const bundle = await unpackBundle(stdout.split('\n')[0]!);
    expect(bundle.json<{ checks: { id: string }[] }>('check.json').checks.find((c) => c.id === 'dps-hold'))
      .toMatchObject({ status: 'fail', message: 'DPS will not assign this device until an operator acts (daemon pid 4242): DPS refused the device (401)' });
    expect(asked).not.toContain('status');
  }, 60_000);

  it('prints the path, the size, the collectors that did not complete and why; --json has the same in fields', async () => {
    const { configPath, port } = await board();
    const output = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const transport = `swtpm:host=127.0.0.1,port=${await freePort()}`;
    standInPrograms({ journalctl: 'echo "Failed to open the journal: Permission denied" >&2; exit 1' });
    const started = Date.now();
    const text = await captureOutput(() => supportBundle({ config: configPath, output, since: '2h' }, { tpmTransport: transport }));
    expect(text).toMatchObject({ result: 0, stderr: '' });
    const file = text.stdout.split('\n')[0]!;
    const bundle = await unpackBundle(file);
    const { collectors } = bundle.manifest;
    const notOk = collectors.filter((c) => c.status !== 'ok');
    // journalctl fails; most others complete.
    expect(notOk.map((c) => c.name)).toContain('journal');
    expect(notOk.length).toBeLessThan(collectors.length - 1);
    expect(text.stdout).toBe([
      file,
      `  ${Math.ceil(statSync(file).size / 1024)} KiB, ${collectors.length - notOk.length} of ${collectors.length} collectors complete, daemon not running`,
      ...notOk.map((c) => `  ${c.name}: ${c.status}${c.error ? ` (${c.error})` : ''}`),
      '',
    ].join('\n'));
    expect(bundle.manifest).toMatchObject({ builtBy: 'cli', daemon: 'not running' });
    expect(Date.parse(bundle.manifest.since)).toBeGreaterThanOrEqual(started - 7_200_000 - 1_000);
    expect(Date.parse(bundle.manifest.since)).toBeLessThanOrEqual(Date.now() - 7_200_000);
    // The TPM read is the one IOT_AGENT_TPM names, not the config's.
    expect(bundle.json('tpm.json')).toMatchObject({ transport, via: 'direct' });
    expect(transport).not.toContain(`port=${port}`);
    expect(bundle.json('status.json')).toMatchObject({ daemon: 'not running', state: 'stopped', idScope: '0ne0012ABCD' });

    const again = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const json = await captureOutput(() => supportBundle({ config: configPath, output: again, json: true }, {}));
    expect(json.stderr).toBe('');
    const summary = JSON.parse(json.stdout) as { path: string };
    const second = await unpackBundle(summary.path);
    expect(summary).toEqual({
      path: summary.path, bytes: statSync(summary.path).size, durationMs: second.manifest.durationMs, daemon: 'not running',
      collectors: Object.fromEntries(second.manifest.collectors.map((c) => [c.name, c.status])),
    });
    expect(Object.keys(second.manifest.collectors)).toHaveLength(11);
  }, 60_000);

  it('bundles the running daemon\'s status as its snapshot gives it', async () => {
    const { configPath, runtimeDir } = await board();
    await daemonAnswering(runtimeDir, handling((request, reply) => {
      if (request.op === 'support') reply({ event: 'support', status: daemonStatus(), logLevel: 'info', recentLog: [], executedCommands: null });
      else reply({ event: 'error', message: 'not asked' });
    }));
    const output = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-bundle-'));
    const { stdout } = await captureOutput(() => supportBundle({ config: configPath, output }, {}));
    expect(stdout.split('\n')[1]).toMatch(/, daemon running$/);
    const bundle = await unpackBundle(stdout.split('\n')[0]!);
    expect(bundle.json('status.json')).toEqual({ ...daemonStatus(), daemon: 'running' });
  }, 60_000);

  it('refuses a --since it cannot read', async () => {
    const { configPath } = await board();
    expect((await captureOutput(() => supportBundle({ config: configPath, since: 'yesterday' }, {}))).error).toMatchObject({ exitCode: 2 });
  });
});
