import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConfig, describeInvalidConfig, describeValidConfig } from '../../agent/check/config-check.js';
import { salvageConfig } from '../../agent/check/config-salvage.js';
import { DEFAULT_CONFIG_PATH, DEFAULTS } from '../../agent/config.js';
import { stringContaining } from '../support/matchers.js';

function configFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-check-config-')), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('check: config', () => {
  it('passes a valid config with an ID scope', async () => {
    const { result, config } = await checkConfig(configFile('provisioning:\n  idScope: 0ne0012ABCD\n'));
    expect(result.status).toBe('pass');
    expect(result.message).toContain('is valid (ID scope 0ne0012ABCD, DPS global.azure-devices-provisioning.net)');
    expect(config.provisioning.idScope).toBe('0ne0012ABCD');
  });

  it('warns that a device without an ID scope cannot provision', async () => {
    const { result } = await checkConfig(configFile('stateDir: /tmp/x\n'));
    expect(result.status).toBe('warn');
    expect(result.message).toContain('provisioning.idScope is missing: the device cannot provision');
  });

  it('fails an invalid config with the ConfigError message and keeps its valid keys for the other checks', async () => {
    const file = configFile('stateDir: /srv/state\ntpm:\n  transprot: device\nprovisioning:\n  globalEndpoint: dps.example.net\n  idScope: "not a scope"\n');
    const { result, config } = await checkConfig(file);
    expect(result.status).toBe('fail');
    expect(result.message).toContain(`config ${file}: `);
    expect(result.message).toContain('the other checks use built-in defaults in place of tpm.transprot, provisioning.idScope');
    expect(config.stateDir).toBe('/srv/state');
    expect(config.provisioning.globalEndpoint).toBe('dps.example.net');
    expect(config.tpm.transport).toBe(DEFAULTS.tpm.transport);
  });

  it('fails a config file that cannot be read, using the defaults', async () => {
    const { result, config } = await checkConfig('/nonexistent/iot-agent/config.yaml');
    expect(result.status).toBe('fail');
    expect(result.message).toBe('config /nonexistent/iot-agent/config.yaml: cannot be read (ENOENT); the other checks use the built-in defaults');
    expect(result.hint).toContain('--config');
    expect(config).toEqual(DEFAULTS);
  });
});

describe('check: salvaging an invalid config', () => {
  it('keeps nothing from a file that is not YAML', () => {
    expect(salvageConfig('a: [', 'f')).toEqual({ config: DEFAULTS, ignored: ['(the whole file: not valid YAML)'] });
  });

  it('salvages every section the config has, the newer ones included', () => {
    const { config, ignored } = salvageConfig('log:\n  level: loud\ntelemetry:\n  intervalSeconds: 15\n  queueLimit: 1\nhardening:\n  bootGraceSeconds: 90\n', 'f');
    expect(config.telemetry).toEqual({ intervalSeconds: 15, queueLimit: DEFAULTS.telemetry.queueLimit, maxMessagesPerSecond: DEFAULTS.telemetry.maxMessagesPerSecond });
    expect(config.hardening.bootGraceSeconds).toBe(90);
    expect(ignored).toEqual(['log.level', 'telemetry.queueLimit']);
  });

  it('drops unknown and invalid keys one by one', () => {
    const { config, ignored } = salvageConfig('log:\n  level: loud\ntls:\n  extraCaFile: /ca.pem\nfrobnicate: 1\ntpm: device\n', 'f');
    expect(ignored).toEqual(['log.level', 'frobnicate', 'tpm']);
    expect(config.tls.extraCaFile).toBe('/ca.pem');
    expect(config.log.level).toBe(DEFAULTS.log.level);
  });
});

describe('check: the config check in words', () => {
  it('says when no config file exists and the built-in defaults apply', () => {
    const config = { ...structuredClone(DEFAULTS), provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0012ABCD' } };
    expect(describeValidConfig(config, '/etc/iot-agent/config.yaml', false)).toEqual({
      id: 'config', status: 'pass', message: 'no config file at /etc/iot-agent/config.yaml (built-in defaults) (ID scope 0ne0012ABCD, DPS global.azure-devices-provisioning.net)',
    });
    expect(describeValidConfig(structuredClone(DEFAULTS), '/etc/iot-agent/config.yaml', false)).toEqual({
      id: 'config', status: 'warn', message: 'no config file at /etc/iot-agent/config.yaml (built-in defaults); provisioning.idScope is missing: the device cannot provision',
      hint: 'set provisioning.idScope in /etc/iot-agent/config.yaml to the ID scope of your DPS instance (Azure portal, DPS overview)',
    });
  });

  it('says the other checks use the valid keys when none had to be replaced, and how to fix the file', () => {
    expect(describeInvalidConfig('config f: foo: unknown key', '/etc/x.yaml', [], true)).toEqual({
      id: 'config', status: 'fail', message: 'config f: foo: unknown key; the other checks use its valid keys',
      hint: 'fix /etc/x.yaml: the agent does not start with an invalid config',
    });
    expect(describeInvalidConfig('p', '/etc/x.yaml', [], false).hint).toBe('pass the right file with --config, or create /etc/x.yaml');
  });

  it('keeps valid top-level keys, drops invalid ones, and leaves out keys without a value', () => {
    const { config, ignored } = salvageConfig('stateDir: relative/path\nruntimeDir: /srv/run\ntpm:\nunknown:\ncolour: blue\n', 'f');
    expect(ignored).toEqual(['stateDir', 'colour']);
    expect(config.runtimeDir).toBe('/srv/run');
    expect(config.stateDir).toBe(DEFAULTS.stateDir);
    expect(config.tpm).toEqual(DEFAULTS.tpm);
  });

  it('keeps nothing, and ignores nothing, from an empty file; nothing from a file that is not a mapping', () => {
    expect(salvageConfig('', 'f')).toEqual({ config: DEFAULTS, ignored: [] });
    expect(salvageConfig('just text', 'f')).toEqual({ config: DEFAULTS, ignored: ['(the whole file: not a mapping)'] });
    expect(salvageConfig('- a\n- b', 'f')).toEqual({ config: DEFAULTS, ignored: ['(the whole file: not a mapping)'] });
  });

  it('never changes the built-in defaults it starts from', () => {
    const before = structuredClone(DEFAULTS);
    salvageConfig('stateDir: /srv/state\nlog:\n  level: debug\n', 'f');
    expect(DEFAULTS).toEqual(before);
  });

  it('salvages a file that is invalid as a whole, reading the file the agent would read', async () => {
    const file = configFile('log:\n  level: debug\n  colour: blue\n');
    const { result, config } = await checkConfig(file);
    expect(result).toMatchObject({ status: 'fail', message: stringContaining('the other checks use built-in defaults in place of log.colour') });
    expect(config.log.level).toBe('debug');
  });
});

describe('check: the default config file', () => {
  it('says the built-in defaults apply when the default file is absent, and checks it when present', async () => {
    const { result } = await checkConfig(undefined);
    if (existsSync(DEFAULT_CONFIG_PATH)) expect(result.message).toMatch(new RegExp(`^(${DEFAULT_CONFIG_PATH} is valid|config ${DEFAULT_CONFIG_PATH}: )`));
    else expect(result.message).toBe(`no config file at ${DEFAULT_CONFIG_PATH} (built-in defaults); provisioning.idScope is missing: the device cannot provision`);
  });
});
