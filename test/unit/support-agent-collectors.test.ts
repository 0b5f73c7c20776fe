import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_PATH, DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { checkCollector, configCollector, stateCollector, statusCollector, tpmCollector, versionsCollector } from '../../agent/support/collect-agent.js';
import { runCollector, type CollectedFile } from '../../agent/support/collector.js';
import type { BundleSources } from '../../agent/support/sources.js';
import { agentVersion } from '../../agent/version.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-collect-'));
  dirs.push(dir);
  return dir;
}

/** What a bundle's sources hold when no daemon runs, with a state directory of the test's own. */
function sources(overrides: Partial<BundleSources> = {}): BundleSources {
  const config: AgentConfig = { ...structuredClone(DEFAULTS), stateDir: tempDir(), tpm: { transport: 'swtpm:host=127.0.0.1,port=2321' } };
  return {
    configPath: undefined, config, since: new Date('2026-03-15T00:00:00Z'), builtBy: 'cli', daemon: undefined,
    status: () => Promise.resolve({ daemon: 'not running' } as never),
    readTpm: () => Promise.resolve({ report: { manufacturer: 'IBM' } as never, via: 'direct' }),
    runChecks: () => Promise.resolve([{ name: 'config', status: 'ok' }] as never),
    hardening: { root: '/', backend: 'auto' },
    ...overrides,
  };
}

const daemon = (status: Record<string, unknown>, executedCommands: number | null = 3) =>
  ({ status, logLevel: 'info', recentLog: [], executedCommands }) as unknown as NonNullable<BundleSources['daemon']>;

function json(files: CollectedFile[], name: string): Record<string, unknown> {
  const file = files.find((f) => f.name === name);
  if (!file || !('json' in file)) throw new Error(`no ${name} among ${files.map((f) => f.name).join(', ')}`);
  return file.json as Record<string, unknown>;
}

afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

describe('the versions collector', () => {
  it('names the agent, Node, OpenSSL, the OS, the kernel and the version of every SDK package that speaks to Azure', async () => {
    const { entry, files } = await runCollector(versionsCollector());
    expect(entry.status).toBe('ok');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
    const require = createRequire(import.meta.url);
    const version = (pkg: string) => (require(`${pkg}/package.json`) as { version: string }).version;
    expect(json(files, 'versions.json')).toEqual({
      agent: agentVersion(), node: process.versions.node, openssl: process.versions.openssl, os: pretty,
      kernel: os.release(), kernelBuild: os.version(), arch: os.arch(), hostname: os.hostname(),
      packages: Object.fromEntries(['azure-iot-device', 'azure-iot-device-mqtt', 'azure-iot-common', 'azure-iot-provisioning-device',
        'azure-iot-provisioning-device-http', 'azure-iot-security-tpm', 'tss.js'].map((p) => [p, version(p)])),
    });
    expect(pretty).not.toBeNull();
  });
});

describe('the config collector', () => {
  it('gives the file as written, the config as loaded, its check, and the keys left to the defaults', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'config.yaml');
    const text = `provisioning:\n  idScope: 0ne00ABCDEF\nstateDir: ${dir}\n`;
    writeFileSync(file, text);
    const collector = configCollector(sources({ configPath: file }));
    expect(collector.reads).toBe(file);
    const { files } = await runCollector(collector);
    expect(files.map((f) => f.name)).toEqual(['config.json', 'config.yaml']);
    expect(files[1]).toEqual({ name: 'config.yaml', text });
    const config = json(files, 'config.json');
    expect(config).toMatchObject({ file, exists: true, check: { status: 'pass' }, loaded: { provisioning: { idScope: '0ne00ABCDEF' }, stateDir: dir } });
    expect(config.fromDefaults).toContain('tpm.transport');
    expect(config.fromDefaults).not.toContain('stateDir');
  });

  it('says when there is no config file, and reads the default path unless given one', async () => {
    expect(configCollector(sources()).reads).toBe(DEFAULT_CONFIG_PATH);
    const missing = path.join(tempDir(), 'absent.yaml');
    const { files } = await runCollector(configCollector(sources({ configPath: missing })));
    expect(files.map((f) => f.name)).toEqual(['config.json']);
    expect(json(files, 'config.json')).toMatchObject({ file: missing, exists: false });
  });
});

describe('the status, check and TPM collectors', () => {
  it('write what the status and the checks say', async () => {
    const status = await runCollector(statusCollector(sources({ status: () => Promise.resolve({ state: 'ready' } as never) })));
    expect(status.files).toEqual([{ name: 'status.json', json: { state: 'ready' } }]);
    expect(statusCollector(sources()).reads).toBe('state files');
    expect(statusCollector(sources({ daemon: daemon({}) })).reads).toBe('the running daemon');
    const check = await runCollector(checkCollector(sources()));
    expect(check.files).toEqual([{ name: 'check.json', json: { checks: [{ name: 'config', status: 'ok' }] } }]);
  });

  it('reads the TPM directly, or through the running daemon, and says which', async () => {
    const direct = tpmCollector(sources());
    expect(direct.reads).toBe('TPM swtpm:host=127.0.0.1,port=2321');
    expect((await runCollector(direct)).files).toEqual([{ name: 'tpm.json', json: { manufacturer: 'IBM', via: 'direct' } }]);
    const shared = tpmCollector(sources({ daemon: daemon({}), readTpm: () => Promise.resolve({ report: { manufacturer: 'IBM' } as never, via: { daemonPid: 4242 } }) }));
    expect(shared.reads).toBe('TPM swtpm:host=127.0.0.1,port=2321 through the running daemon');
    expect((await runCollector(shared)).files).toEqual([{ name: 'tpm.json', json: { manufacturer: 'IBM', via: 'the running daemon (pid 4242)' } }]);
  });
});

describe('the state collector', () => {
  it('reads the state directory when no daemon runs: no assignment, no queue, nothing executed', async () => {
    const s = sources();
    const collector = stateCollector(s);
    expect(collector.reads).toBe(`${s.config.stateDir}: assignment.json, telemetry/, executed-commands.json`);
    const { files } = await runCollector(collector);
    expect(files).toEqual([{ name: 'state.json', json: {
      stateDir: s.config.stateDir, assignment: { status: 'absent' }, telemetryQueue: null, executedCommands: { count: 0, remembered: 1000 },
    } }]);
  });

  it('counts the executed command ids on disk, and says when their file is not what it should be', async () => {
    const s = sources();
    const file = path.join(s.config.stateDir, 'executed-commands.json');
    const count = async () => (json((await runCollector(stateCollector(s))).files, 'state.json').executedCommands as { count: unknown }).count;
    writeFileSync(file, JSON.stringify({ kind: 'iot-agent/executed-commands', entries: [{ id: 'a' }, { id: 'b' }] }));
    expect(await count()).toBe(2);
    writeFileSync(file, JSON.stringify({ kind: 'iot-agent/executed-commands' }));
    expect(await count()).toBe('not an executed-commands document');
    writeFileSync(file, '{"kind":');
    expect(await count()).toBe('unreadable (not JSON)');
    rmSync(file);
    mkdirSync(file);
    expect(await count()).toBe('unreadable (EISDIR)');
  });

  it('reads the telemetry queue on disk', async () => {
    const s = sources();
    mkdirSync(path.join(s.config.stateDir, 'telemetry'));
    const { files } = await runCollector(stateCollector(s));
    expect(json(files, 'state.json').telemetryQueue).toEqual({ depth: 0, dropped: 0, oldestAgeSeconds: null });
  });

  it('takes the queue and the executed ids from the running daemon', async () => {
    const queue = { depth: 5, dropped: 1, oldestAgeSeconds: 30 };
    const { files } = await runCollector(stateCollector(sources({ daemon: daemon({ telemetryQueue: queue }, 7) })));
    expect(json(files, 'state.json')).toMatchObject({ telemetryQueue: queue, executedCommands: { count: 7, remembered: 1000 } });
  });
});
