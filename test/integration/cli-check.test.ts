import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_IDS, type CheckResult } from '../../agent/check/result.js';
import { assignmentPath, writeAssignment } from '../../agent/state/assignment-store.js';
import { EK_HANDLE, ensureIdentity, readPersistent } from '../../agent/tpm/identity.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { runCli, type CliResult } from '../support/cli.js';
import { stringContaining } from '../support/matchers.js';
import { freePortPair, randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

const run = promisify(execFile);
const ID_SCOPE = '0ne0012ABCD';

/** Servers for one test file; all on loopback addresses of its own, closed in afterAll. */
class Listeners {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();

  /** A TLS server with the given certificate: completes the handshake, then hangs up. */
  tls(host: string, port: number, credentials: ServerCredentials): Promise<void> {
    const server = tls.createServer({ key: credentials.key, cert: credentials.cert }, (socket) => {
      this.track(socket);
      socket.end();
    });
    server.on('tlsClientError', () => undefined); // a client that rejects our certificate is the point of some tests
    return this.listen(server, host, port);
  }

  /** Accepts TCP connections and never says a word: a middlebox or a hung service. */
  silent(host: string, port: number): Promise<void> {
    return this.listen(net.createServer((socket) => this.track(socket)), host, port);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private listen(server: net.Server, host: string, port: number): Promise<void> {
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EACCES' ? new Error(`listening on ${host}:${port} needs root (the CLI tests run as root)`, { cause: err }) : err));
      server.listen(port, host, () => resolve());
    });
  }
}

/** Persists an HMAC key at 0x81000100 with tpm2-tools, standing in for the key DPS issues. */
async function persistIdentityKey(swtpm: SwtpmInstance, dir: string): Promise<void> {
  const tcti = ['-T', swtpm.transport];
  const context = path.join(dir, 'identity.ctx');
  try {
    await run('tpm2_createprimary', [...tcti, '-C', 'o', '-G', 'hmac', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign|noda', '-c', context]);
    await run('tpm2_evictcontrol', [...tcti, '-C', 'o', '-c', context, '0x81000100']);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('tpm2-tools is not installed: run scripts/setup.sh (Debian package tpm2-tools)', { cause: err });
    throw err;
  }
}

async function withEndorsementKey(swtpm: SwtpmInstance): Promise<void> {
  const client = clientFor(swtpm.transport);
  await ensureIdentity(client).finally(() => client.close());
}

function distinctLoopbackAddresses(count: number): string[] {
  const addresses = new Set<string>();
  for (let i = 0; i < 100 && addresses.size < count; i++) addresses.add(randomLoopbackAddress());
  return [...addresses];
}

interface Scenario {
  transport: string;
  dps: string;
  /** The hub in the cached assignment; ignored unless state is 'valid'. */
  hub?: string;
  state?: 'valid' | 'absent' | 'corrupt';
  stateDirMode?: number;
  /** Replaces the generated config file's text. */
  configText?: (settings: { transport: string; dps: string; stateDir: string }) => string;
}

interface CheckRun extends CliResult {
  checks: Record<string, CheckResult>;
}

describe('iot-agent check', () => {
  let dir: string;
  let caFile: string;
  let provisioned: SwtpmInstance;
  let fresh: SwtpmInstance;
  let endorsedOnly: SwtpmInstance;
  let listeners: Listeners;
  // cloud: DPS on 443 and hub on 8883 with the test CA; foreign: a certificate from another CA;
  // misnamed: a trusted certificate for another address; nobody: nothing listens; silent: TCP accepted, TLS never answered.
  let cloud: string, foreign: string, misnamed: string, nobody: string, silent: string;
  let scenarioCount = 0;

  beforeAll(async () => {
    listeners = new Listeners();
    [cloud, foreign, misnamed, nobody, silent] = distinctLoopbackAddresses(5) as [string, string, string, string, string];
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-cli-check-'));
    const [credentials, otherCredentials] = await Promise.all([
      ensureServerCredentials(path.join(dir, 'ca'), [cloud]),
      ensureServerCredentials(path.join(dir, 'other-ca'), [foreign]),
    ]);
    caFile = credentials.caCertPath;
    await Promise.all([
      listeners.tls(cloud, 443, credentials),
      listeners.tls(cloud, 8883, credentials),
      listeners.tls(foreign, 443, otherCredentials),
      listeners.tls(misnamed, 443, credentials),
      listeners.silent(silent, 443),
      listeners.silent(silent, 8883),
    ]);
    [provisioned, fresh, endorsedOnly] = await Promise.all([SwtpmInstance.start(), SwtpmInstance.start(), SwtpmInstance.start()]);
    await Promise.all([withEndorsementKey(provisioned), withEndorsementKey(endorsedOnly)]);
    await persistIdentityKey(provisioned, dir);
  });

  afterAll(async () => {
    await listeners?.close();
    await Promise.all([provisioned?.stop(), fresh?.stop(), endorsedOnly?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Writes a config (and state) for one run, then runs `check --json` and `check` alike. */
  async function prepare(scenario: Scenario): Promise<string> {
    const root = path.join(dir, `scenario-${++scenarioCount}`);
    const stateDir = path.join(root, 'state');
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    if (scenario.stateDirMode !== undefined) chmodSync(stateDir, scenario.stateDirMode);
    const state = scenario.state ?? 'valid';
    if (state === 'valid') {
      await writeAssignment(stateDir, {
        assignedHub: scenario.hub ?? cloud, deviceId: 'board-17', registrationId: 'board-17',
        idScope: ID_SCOPE, globalEndpoint: scenario.dps, assignedAt: '2026-11-26T02:30:00.000Z', identityKeyHandle: 0x81000100,
      });
    } else if (state === 'corrupt') {
      writeFileSync(assignmentPath(stateDir), '{"kind": "iot-agent/assig');
    }
    const settings = { transport: scenario.transport, dps: scenario.dps, stateDir };
    const file = path.join(root, 'config.yaml');
    writeFileSync(file, scenario.configText?.(settings) ?? [
      'provisioning:', `  idScope: ${ID_SCOPE}`, `  globalEndpoint: ${scenario.dps}`,
      'tpm:', `  transport: ${scenario.transport}`,
      'tls:', `  extraCaFile: ${caFile}`,
      `stateDir: ${stateDir}`, '',
    ].join('\n'));
    return file;
  }

  async function check(scenario: Scenario, timeoutMs = 20_000): Promise<CheckRun> {
    const result = await runCli(['--config', await prepare(scenario), 'check', '--json'], { IOT_AGENT_TPM: '' }, timeoutMs);
    expect(result.stderr).toBe('');
    const parsed = JSON.parse(result.stdout) as { checks: CheckResult[] };
    return { ...result, checks: Object.fromEntries(parsed.checks.map((c) => [c.id, c])) };
  }

  const healthy = (): Scenario => ({ transport: provisioned.transport, dps: cloud, hub: cloud });

  it('passes every check on a provisioned device whose DPS and hub answer with trusted certificates', async () => {
    const result = await runCli(['--config', await prepare(healthy()), 'check'], { IOT_AGENT_TPM: '' });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(CHECK_IDS.length + 1);
    CHECK_IDS.forEach((id, i) => expect(lines[i]).toMatch(new RegExp(`^PASS  ${id.padEnd(10)} \\S`)));
    expect(lines[1]).toMatch(/^PASS {2}tpm {8}TPM reachable \(swtpm:host=127\.0\.0\.1,port=\d+\): EK present at 0x81010001, registration id [a-z2-7]{52}$/);
    expect(result.stdout).toContain(`PASS  dps-tls    TLS handshake with DPS ${cloud}:443`);
    expect(result.stdout).toContain(`PASS  hub-tls    TLS handshake with hub ${cloud}:8883`);
    expect(lines.at(-1)).toBe(`${CHECK_IDS.length} checks: ${CHECK_IDS.length} passed, 0 warned, 0 failed: all good`);
  });

  it('prints exactly one JSON object of checks with id, status, message and a hint where not passing', async () => {
    const result = await runCli(['--config', await prepare({ ...healthy(), state: 'absent' }), 'check', '--json'], { IOT_AGENT_TPM: '' });
    expect(result.code).toBe(0); // warnings only
    expect(result.stdout.trimEnd().split('\n')).toHaveLength(1);
    const parsed = JSON.parse(result.stdout) as { checks: Record<string, unknown>[] };
    expect(Object.keys(parsed)).toEqual(['checks']);
    expect(parsed.checks.map((c) => c.id)).toEqual([...CHECK_IDS]);
    for (const c of parsed.checks) {
      expect(['pass', 'warn', 'fail']).toContain(c.status);
      expect(typeof c.message).toBe('string');
      expect(Object.keys(c).sort()).toEqual(c.status === 'pass' ? ['id', 'message', 'status'] : ['hint', 'id', 'message', 'status']);
    }
  });

  it('fails the TPM check at once when nothing listens on the TPM port', async () => {
    const port = await freePortPair();
    const run = await check({ ...healthy(), transport: `swtpm:host=127.0.0.1,port=${port}` });
    expect(run.code).toBe(1);
    expect(run.ms).toBeLessThan(5_000);
    expect(run.checks.tpm).toMatchObject({ status: 'fail', hint: stringContaining('nothing listens there') });
    expect(run.checks.tpm!.message).toContain(`TPM unreachable (swtpm:host=127.0.0.1,port=${port})`);
    expect(run.checks.tpm!.message).toContain('ECONNREFUSED');
    expect(run.checks.identity).toMatchObject({ status: 'fail', message: 'not checked: the TPM could not be read (see tpm)' });
  });

  it('warns about an absent EK on a fresh TPM, and only looks: the EK is still absent afterwards', async () => {
    const run = await check({ ...healthy(), transport: fresh.transport });
    expect(run.code).toBe(0);
    expect(run.checks.tpm).toMatchObject({ status: 'warn', message: `TPM reachable (${fresh.transport}), but no EK at 0x81010001` });
    expect(run.checks.tpm!.hint).toContain('iot-agent tpm info');
    expect(run.checks.identity!.status).toBe('warn');
    const client = clientFor(fresh.transport);
    expect(await readPersistent(client, EK_HANDLE).finally(() => client.close())).toBeUndefined();
  });

  it('warns that a TPM with an EK but no identity key is not provisioned yet', async () => {
    const run = await check({ ...healthy(), transport: endorsedOnly.transport });
    expect(run.code).toBe(0);
    expect(run.checks.tpm!.status).toBe('pass');
    expect(run.checks.identity).toMatchObject({ status: 'warn', message: 'no identity key at 0x81000100: not provisioned yet' });
  });

  it('fails TLS to a server whose certificate comes from another CA, naming the CA problem', async () => {
    const run = await check({ ...healthy(), dps: foreign });
    expect(run.code).toBe(1);
    expect(run.checks['dps-dns']!.status).toBe('pass');
    expect(run.checks['dps-tls']!.status).toBe('fail');
    expect(run.checks['dps-tls']!.message).toContain(`DPS ${foreign}:443: certificate signed by an unknown CA`);
    expect(run.checks['dps-tls']!.message).toContain(`nor tls.extraCaFile (${caFile})`);
    expect(run.checks['hub-tls']!.status).toBe('pass');
  });

  it('fails TLS to a server whose trusted certificate names another host', async () => {
    const run = await check({ ...healthy(), dps: misnamed });
    expect(run.checks['dps-tls']!.status).toBe('fail');
    expect(run.checks['dps-tls']!.message).toContain(`DPS ${misnamed}:443: the certificate is not for ${misnamed}`);
  });

  it('takes the TPM transport from IOT_AGENT_TPM over the config, and says so', async () => {
    const port = await freePortPair();
    const file = await prepare({ ...healthy(), transport: `swtpm:host=127.0.0.1,port=${port}` });
    const result = await runCli(['--config', file, 'check', '--json'], { IOT_AGENT_TPM: provisioned.transport });
    const tpm = (JSON.parse(result.stdout) as { checks: CheckResult[] }).checks.find((c) => c.id === 'tpm');
    expect(tpm).toMatchObject({ status: 'pass', message: stringContaining(`TPM reachable (${provisioned.transport} from IOT_AGENT_TPM)`) });
  });

  it('fails the hub TLS check as refused when nothing listens on 8883', async () => {
    const run = await check({ ...healthy(), hub: nobody });
    expect(run.code).toBe(1);
    expect(run.checks['hub-dns']!.status).toBe('pass');
    expect(run.checks['hub-tls']).toMatchObject({ status: 'fail', message: `hub ${nobody}:8883: connection refused: nothing listens there, or a firewall rejects it` });
  });

  it('bounds every check when everything hangs: a silent TPM and listeners that never speak TLS', async () => {
    const tpmPort = await freePortPair();
    await listeners.silent('127.0.0.1', tpmPort);
    const run = await check({ transport: `swtpm:host=127.0.0.1,port=${tpmPort}`, dps: silent, hub: silent });
    expect(run.code).toBe(1);
    expect(run.ms).toBeLessThan(10_000); // sequential checks would take 4 + 5 + 5 s and more
    expect(run.checks.tpm!.message).toMatch(/no answer to TPM2_ReadPublic within 4000 ms/);
    for (const id of ['dps-tls', 'hub-tls']) {
      expect(run.checks[id]!.status).toBe('fail');
      expect(run.checks[id]!.message).toContain('TCP connected, but the TLS handshake did not finish within 5 s');
    }
  }, 25_000);

  it('fails DNS for names that do not resolve, and does not try TLS to them', async () => {
    const run = await check({ ...healthy(), dps: 'dps.iot-agent-check.invalid', hub: 'hub.iot-agent-check.invalid' });
    expect(run.code).toBe(1);
    for (const [dns, tlsId, host] of [['dps-dns', 'dps-tls', 'dps.iot-agent-check.invalid'], ['hub-dns', 'hub-tls', 'hub.iot-agent-check.invalid']] as const) {
      expect(run.checks[dns]!.status).toBe('fail');
      // ENOTFOUND from a resolver that answers; EAI_AGAIN where none is reachable.
      expect(run.checks[dns]!.message).toMatch(new RegExp(`^(DPS|hub) ${host.replace(/\./g, '\\.')} (does not resolve \\(ENOTFOUND\\)|could not be resolved now \\(EAI_AGAIN\\))`));
      expect(run.checks[tlsId]!.message).toContain('not tried');
    }
  });

  it('fails a corrupt state file with the reason, and knows no hub', async () => {
    const run = await check({ ...healthy(), state: 'corrupt' });
    expect(run.code).toBe(1);
    expect(run.checks.state!.status).toBe('fail');
    expect(run.checks.state!.message).toContain('is not usable: the file is not valid JSON (truncated or corrupt)');
    expect(run.checks.state!.hint).toContain('re-provisions');
    expect(run.checks['hub-dns']).toMatchObject({ status: 'warn', message: 'the cached assignment is not usable (see state), no hub known' });
  });

  it('warns about a missing state file: not provisioned, no hub known', async () => {
    const run = await check({ ...healthy(), state: 'absent' });
    expect(run.code).toBe(0);
    expect(run.checks.state!.status).toBe('warn');
    expect(run.checks.state!.message).toMatch(/^no cached assignment at .*assignment\.json: not provisioned$/);
    expect(run.checks['hub-dns']).toMatchObject({ status: 'warn', message: 'not provisioned, no hub known' });
    expect(run.checks['hub-tls']).toMatchObject({ status: 'warn', message: 'not provisioned, no hub known' });
  });

  it('warns about a state directory other users can write to', async () => {
    const run = await check({ ...healthy(), stateDirMode: 0o777 });
    expect(run.code).toBe(0);
    expect(run.checks['state-dir']!.status).toBe('warn');
    expect(run.checks['state-dir']!.message).toContain('is world-writable (mode 0777)');
  });

  it('fails an invalid config with its error, and still checks the rest with its valid keys', async () => {
    const run = await check({
      ...healthy(),
      configText: ({ transport, dps, stateDir }) => [
        'provisioning:', `  idScope: ${ID_SCOPE}`, `  globalEndpoint: ${dps}`,
        'tpm:', `  transprot: ${transport}`,
        'tls:', `  extraCaFile: ${caFile}`, `stateDir: ${stateDir}`, '',
      ].join('\n'),
    });
    expect(run.code).toBe(1);
    expect(run.checks.config!.status).toBe('fail');
    expect(run.checks.config!.message).toContain('tpm.transprot: unknown key (did you mean tpm.transport?)');
    expect(run.checks.config!.message).toContain('the other checks use built-in defaults in place of tpm.transprot');
    expect(run.checks.tpm!.message).toContain('device:/dev/tpmrm0'); // the default transport
    expect(run.checks['dps-tls']!.status).toBe('pass'); // endpoint and CA file came from the file
    expect(run.checks.state!.status).toBe('pass');
  });

  it('warns that a config without an ID scope cannot provision', async () => {
    const run = await check({
      ...healthy(),
      configText: ({ transport, dps, stateDir }) =>
        `provisioning:\n  globalEndpoint: ${dps}\ntpm:\n  transport: ${transport}\ntls:\n  extraCaFile: ${caFile}\nstateDir: ${stateDir}\n`,
    });
    expect(run.checks.config).toMatchObject({ status: 'warn', hint: stringContaining('provisioning.idScope') });
    expect(run.checks.config!.message).toContain('provisioning.idScope is missing: the device cannot provision');
  });
});
