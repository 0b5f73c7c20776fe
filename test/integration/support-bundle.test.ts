import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../support/agent-process.js';
import { unpackBundle, type UnpackedBundle } from '../support/bundle-archive.js';
import { runCli } from '../support/cli.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { arrayContaining, ofType, stringContaining, stringMatching } from '../support/matchers.js';
import { freePortPair } from '../support/ports.js';

const NAME = /^iot-agent-support-[A-Za-z0-9._-]+-\d{8}T\d{6}Z\.tar\.gz$/;
const PROXY_PASSWORD = 'Pr0xyPassw0rd-do-not-leak';
const SAS_SIGNATURE = 'c2FzLXNpZ25hdHVyZS1kby1ub3QtbGVhaw==';
const SHARED_KEY = 'c2hhcmVkLWFjY2Vzcy1rZXktZG8tbm90LWxlYWs=';
const PRIVATE_KEY_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7do-not-leak';

describe('iot-agent support-bundle', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;
  let out: string;
  let runs = 0;
  const silentServers: net.Server[] = [];

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-bundle' });
    out = path.join(dc.dir, 'bundles');
  }, 60_000);
  afterAll(async () => {
    for (const server of silentServers) server.close();
    await dc?.stop();
  });

  async function bundle(configPath = dc.files.configPath, env: NodeJS.ProcessEnv = {}): Promise<{ result: Awaited<ReturnType<typeof runCli>>; json: Record<string, unknown>; unpacked: UnpackedBundle }> {
    const dir = path.join(out, String(++runs));
    const result = await runCli(['--config', configPath, 'support-bundle', '--output', dir, '--since', '2h', '--json'], { IOT_AGENT_TPM: '', ...env }, 45_000, dc.files.hostsFile);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as Record<string, unknown>;
    return { result, json, unpacked: await unpackBundle(json.path as string) };
  }

  describe('while the daemon runs', () => {
    beforeAll(async () => {
      agent = dc.startAgent();
      await agent.waitForState('ready');
    }, 60_000);
    afterAll(async () => {
      await dc.stopAgents();
    });

    it('writes one owner-only archive named for the host and UTC time, prints its path as JSON, and asks the daemon for its live state', async () => {
      const { json, unpacked } = await bundle();
      expect(path.basename(json.path as string)).toMatch(NAME);
      expect(statSync(json.path as string).mode & 0o777).toBe(0o600);
      expect(json).toMatchObject({ daemon: 'running', bytes: statSync(json.path as string).size });
      expect(unpacked.manifest).toMatchObject({ builtBy: 'cli', daemon: 'running' });
      expect(unpacked.json('status.json')).toMatchObject({
        daemon: 'running', state: 'ready', deviceId: 'board-bundle', hubProtocol: 'mqtt', consecutiveFailures: 0,
        telemetryQueue: { depth: ofType(Number), dropped: 0 },
      });
      // Measured from DPS's Date header when this run provisioned; null after a warm start.
      const offset = unpacked.json<{ clockOffsetMs: unknown }>('status.json').clockOffsetMs;
      expect(offset === null || typeof offset === 'number').toBe(true);
      expect(unpacked.files.get('daemon-log.txt')).toContain('event=state.changed');
      expect(unpacked.json('tpm.json')).toMatchObject({ via: `the running daemon (pid ${agent.child.pid})`, endorsementKey: { ok: true }, identityKey: { ok: true, value: { type: 'KEYEDHASH' } } });
      const checks = unpacked.json<{ checks: { id: string; status: string; message: string }[] }>('check.json').checks;
      expect(checks.find((c) => c.id === 'tpm')).toMatchObject({ status: 'pass', message: stringContaining('via the running daemon') });
      expect(unpacked.json('state.json')).toMatchObject({ assignment: { status: 'valid', assignment: { deviceId: 'board-bundle' } } });
      expect(unpacked.json('config.json')).toMatchObject({ exists: true, fromDefaults: arrayContaining(['provisioning.registrationId', 'hardening.bootGraceSeconds']) });
      expect(unpacked.json<{ packages: Record<string, string> }>('versions.json').packages['azure-iot-device']).toMatch(/^\d+\.\d+\.\d+$/);
    }, 60_000);

    it('records every collector in the manifest with what it read or ran, how long it took and how it ended', async () => {
      const { unpacked } = await bundle();
      const names = unpacked.manifest.collectors.map((c) => c.name);
      expect(names).toEqual(['versions', 'config', 'status', 'check', 'tpm', 'state', 'journal', 'daemon-log', 'hardening', 'network', 'time']);
      for (const c of unpacked.manifest.collectors) {
        expect(['ok', 'unavailable']).toContain(c.status);
        expect(c.durationMs).toBeLessThanOrEqual(c.timeoutMs + 1_000);
        expect(typeof c.reads).toBe('string');
        for (const file of c.files) expect(unpacked.files.has(file)).toBe(true);
      }
      const journal = unpacked.collector('journal');
      expect(journal.commands[0]!.argv).toEqual(expect.arrayContaining(['journalctl', '-o', 'short-iso', '-u', 'iot-agent', '-u', 'iot-agent-harden-apply@*']));
      const network = unpacked.json<{ reachability: { role: string; target: string; reachable: boolean }[] }>('network/network.json');
      expect(network.reachability).toContainEqual(expect.objectContaining({ role: 'hub', target: `${dc.hub.hostName}:8883`, reachable: true }));
      expect(network.reachability.filter((r) => r.role === 'dps')).toHaveLength(1);
    }, 60_000);

    it('shows the daemon\'s health in status: protocol, last error, failures in a row, next retry, queue and clock offset', async () => {
      const result = await runCli(['--config', dc.files.configPath, 'status']);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Hub protocol +MQTT over TLS \(port 8883\) \(auto: 8883 first\)$/m);
      expect(result.stdout).toMatch(/^Failures in a row +0$/m);
      expect(result.stdout).toMatch(/^Next retry +none pending$/m);
      expect(result.stdout).toMatch(/^Telemetry queue +\d+ waiting.*, 0 dropped$/m);
      expect(result.stdout).toMatch(/^Clock offset +(not measured yet|-?\d+ s \(service minus device; within 5 min, the local clock is used\))$/m);
    });

    it('passes the TPM check through the daemon that holds the TPM, and says so', async () => {
      const result = await runCli(['--config', dc.files.configPath, 'check', '--json'], { IOT_AGENT_TPM: '' });
      const checks = (JSON.parse(result.stdout) as { checks: { id: string; status: string; message: string }[] }).checks;
      expect(checks.find((c) => c.id === 'tpm')).toMatchObject({ status: 'pass', message: stringMatching(new RegExp(`^TPM reachable \\(${dc.swtpm.transport.replace(/[.()]/g, '\\$&')}, via the running daemon, pid ${agent.child.pid}\\): EK present`)) });
      expect(checks.find((c) => c.id === 'identity')).toMatchObject({ status: 'pass' });
      expect(result.ms).toBeLessThan(10_000);
    });

    it('answers tpm info through the daemon, without a second connection to swtpm', async () => {
      const result = await runCli(['--config', dc.files.configPath, 'tpm', 'info', '--json'], { IOT_AGENT_TPM: '' });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const info = JSON.parse(result.stdout) as Record<string, unknown>;
      const status = JSON.parse((await agent.status()).stdout) as { registrationId: string };
      expect(info).toMatchObject({ viaDaemonPid: agent.child.pid, registrationId: status.registrationId, identityKeyPresent: true, manufacturer: 'IBM', keysCreated: [] });
      const human = await runCli(['--config', dc.files.configPath, 'tpm', 'info'], { IOT_AGENT_TPM: '' });
      expect(human.stdout).toMatch(/^Transport +swtpm:host=127\.0\.0\.1,port=\d+, via the running daemon \(pid \d+\)$/m);
    });

    it('leaves no secret in the archive: proxy credentials, SAS tokens, shared access keys, private keys', async () => {
      const configPath = path.join(dc.dir, 'agent', 'config-with-secrets.yaml');
      writeFileSync(configPath, [
        readFileSync(dc.files.configPath, 'utf8'),
        `# old connection: HostName=hub.example;DeviceId=board-bundle;SharedAccessKey=${SHARED_KEY}`,
        `# token: SharedAccessSignature sr=hub.example%2Fdevices%2Fboard-bundle&sig=${encodeURIComponent(SAS_SIGNATURE)}&se=1900000000`,
        `# blob: https://acct.blob.core.windows.net/c/b?sv=2021-12-02&sr=b&sp=rw&sig=${SAS_SIGNATURE}`,
        `# proxy: http://operator:${PROXY_PASSWORD}@proxy.example:3128`,
        'network:', `  proxy: "http://operator:${PROXY_PASSWORD}@127.0.0.1:3128"`,
        '# -----BEGIN PRIVATE KEY-----', `# ${PRIVATE_KEY_BODY}`, '# -----END PRIVATE KEY-----', '',
      ].join('\n'));
      // A record of a failed remote apply whose error quoted a connection string.
      const records = path.join(dc.dir, 'hardening-root', 'var/lib/iot-agent-hardening');
      mkdirSync(records, { recursive: true });
      writeFileSync(path.join(records, 'last-apply.json'), JSON.stringify({
        requestId: 'r1', invocationId: null, profile: 'strict', finishedAt: new Date().toISOString(),
        error: `confirm failed: HostName=hub.example;SharedAccessKeyName=iothubowner;SharedAccessKey=${SHARED_KEY}`,
      }));
      expect((await dc.invoke('ping')).status).toBe(200); // a method call is logged at debug level
      const { unpacked } = await bundle(configPath, { https_proxy: `http://operator:${PROXY_PASSWORD}@127.0.0.1:3128`, HTTP_PROXY: `operator:${PROXY_PASSWORD}@127.0.0.1:3128` });
      expect(unpacked.files.get('config.yaml')).toContain('SharedAccessKey=[redacted]');
      // network.proxy as the agent loaded it and as the file has it, and the proxy the network collector names.
      expect(unpacked.json<{ loaded: { network: { proxy: string } } }>('config.json').loaded.network.proxy).toBe('http://[redacted]@127.0.0.1:3128');
      expect(unpacked.files.get('config.yaml')).toContain('proxy: "http://[redacted]@127.0.0.1:3128"');
      expect(unpacked.json<{ proxy: unknown }>('network/network.json').proxy).toEqual({ url: 'http://[redacted]@127.0.0.1:3128', source: 'network.proxy' });
      expect(unpacked.json<{ proxyEnvironment: Record<string, string> }>('network/network.json').proxyEnvironment)
        .toEqual({ https_proxy: 'http://[redacted]@127.0.0.1:3128', HTTP_PROXY: '[redacted]@127.0.0.1:3128' });
      expect(unpacked.files.get('daemon-log.txt')).toMatch(/level=debug event=command.result command=ping/);
      for (const [name, text] of unpacked.files) {
        for (const secret of [PROXY_PASSWORD, SAS_SIGNATURE, encodeURIComponent(SAS_SIGNATURE), SHARED_KEY, PRIVATE_KEY_BODY]) {
          expect(text, `${name} holds a secret`).not.toContain(secret);
        }
        expect(text, name).not.toMatch(/SharedAccessSignature\s+sr=/);
        expect(text, name).not.toMatch(/\bsig=(?!\[redacted\])/);
        expect(text, name).not.toMatch(/SharedAccessKey=(?!\[redacted\])/);
        expect(text, name).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
      }
    }, 60_000);
  });

  describe('while the daemon is stopped', () => {
    it('reads the state files and opens the TPM itself', async () => {
      const { json, unpacked } = await bundle();
      expect(json.daemon).toBe('not running');
      expect(unpacked.json('status.json')).toMatchObject({ daemon: 'not running', state: 'stopped', deviceId: 'board-bundle', hubProtocol: null });
      expect(unpacked.json('tpm.json')).toMatchObject({ via: 'direct', endorsementKey: { ok: true } });
      expect(unpacked.collector('daemon-log')).toMatchObject({ status: 'unavailable', error: stringContaining('the daemon does not run') });
      expect(unpacked.json('state.json')).toMatchObject({ telemetryQueue: { depth: ofType(Number) }, executedCommands: { count: 0 } });
      const human = await runCli(['--config', dc.files.configPath, 'support-bundle', '--output', path.join(out, 'human')], { IOT_AGENT_TPM: '' });
      const [first, second] = human.stdout.split('\n');
      expect(path.basename(first!)).toMatch(NAME);
      expect(statSync(first!).isFile()).toBe(true);
      expect(second).toMatch(/^ {2}\d+ KiB, (9|10) of 11 collectors complete, daemon not running$/);
      expect(human.stdout).toContain('\n  daemon-log: unavailable (the daemon does not run: its recent lines are in the journal only)\n');
      const status = await runCli(['--config', dc.files.configPath, 'status', '--json']);
      expect(JSON.parse(status.stdout)).toMatchObject({ daemon: 'not running', telemetryQueue: { dropped: 0 }, lastError: null });
    }, 60_000);

    it('stays within 30 s when the TPM never answers, and names the TPM collector as timed out', async () => {
      const port = await freePortPair();
      const server = net.createServer(() => undefined); // accepts, never answers
      silentServers.push(server);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      const configPath = path.join(dc.dir, 'agent', 'config-hung-tpm.yaml');
      writeFileSync(configPath, readFileSync(dc.files.configPath, 'utf8').replace(/transport: .*/, `transport: swtpm:host=127.0.0.1,port=${port}`));
      const { result, unpacked } = await bundle(configPath);
      expect(result.ms).toBeLessThan(30_000);
      expect(unpacked.collector('tpm')).toMatchObject({ status: 'timed-out', error: 'did not finish within 5000 ms' });
      expect(unpacked.files.has('tpm.json')).toBe(false);
      const checks = unpacked.json<{ checks: { id: string; status: string; message: string }[] }>('check.json').checks;
      expect(checks.find((c) => c.id === 'tpm')).toMatchObject({ status: 'fail', message: stringContaining('no answer to TPM2_ReadPublic') });
    }, 60_000);

    it('records a missing journalctl (and other tools) as unavailable, and still makes the bundle', async () => {
      const { unpacked } = await bundle(dc.files.configPath, { PATH: '/nonexistent' });
      expect(unpacked.collector('journal')).toMatchObject({ status: 'unavailable', error: 'journalctl is not installed: no journal on this system' });
      expect(unpacked.json<{ timedatectl: { error: string } }>('time.json').timedatectl.error).toBe('timedatectl is not installed');
      expect(unpacked.collector('network').status).toBe('ok');
    }, 60_000);
  });
});
