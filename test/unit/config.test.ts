import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG_PATH, DEFAULTS, loadConfig, parseConfig, requireIdScope } from '../../agent/config.js';

function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, '/etc/iot-agent/config.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).exitCode).toBe(2);
    expect((err as ConfigError).message).not.toContain('\n');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config file', () => {
  it('fills every default for an empty file', () => {
    expect(parseConfig('', 'x')).toEqual(DEFAULTS);
    expect(parseConfig('# only a comment\n', 'x')).toEqual(DEFAULTS);
    expect(DEFAULTS.tpm.transport).toBe('device:/dev/tpmrm0');
    expect(DEFAULTS.provisioning.globalEndpoint).toBe('global.azure-devices-provisioning.net');
    expect(DEFAULTS.provisioning.reprovision).toBe('onErrorOnly');
    expect(DEFAULTS.stateDir).toBe('/var/lib/iot-agent');
    expect(DEFAULTS.runtimeDir).toBe('/run/iot-agent');
    expect(DEFAULTS.hardening.bootGraceSeconds).toBe(300);
    expect(DEFAULTS.attestation.pcr).toBe(13);
    expect(DEFAULTS.telemetry).toEqual({ intervalSeconds: 60, queueLimit: 10_000, maxMessagesPerSecond: 4 });
    expect(DEFAULTS.provisioning).toMatchObject({ slowRetryHours: 6, minReprovisionSeconds: 3_600, hubUnreachableSeconds: 1_800 });
  });

  it('logs at info and trusts no extra CA unless told', () => {
    expect(parseConfig('', 'x').log).toEqual({ level: 'info' });
    expect(parseConfig('', 'x').tls).toStrictEqual({ extraCaFile: undefined });
  });

  it('reads every key', () => {
    const config = parseConfig([
      'provisioning:',
      '  idScope: 0ne0012ABCD',
      '  globalEndpoint: 127.0.0.2',
      '  registrationId: board-17',
      '  reprovision: alwaysOnStartup',
      '  minReprovisionSeconds: 600',
      '  hubUnreachableSeconds: 0',
      '  slowRetryHours: 12',
      'tpm:',
      '  transport: swtpm:host=127.0.0.1,port=2321',
      'tls:',
      '  extraCaFile: /etc/iot-agent/ca.pem',
      'stateDir: /tmp/state',
      'runtimeDir: /tmp/run',
      'log:',
      '  level: debug',
      'hardening:',
      '  bootGraceSeconds: 600',
      'attestation:',
      '  pcr: 15',
      'telemetry:',
      '  intervalSeconds: 15',
      '  queueLimit: 500',
      '  maxMessagesPerSecond: 20',
    ].join('\n'), 'x');
    expect(config).toEqual({
      provisioning: {
        idScope: '0ne0012ABCD', globalEndpoint: '127.0.0.2', registrationId: 'board-17', reprovision: 'alwaysOnStartup',
        minReprovisionSeconds: 600, hubUnreachableSeconds: 0, slowRetryHours: 12,
      },
      tpm: { transport: 'swtpm:host=127.0.0.1,port=2321' },
      tls: { extraCaFile: '/etc/iot-agent/ca.pem' },
      network: { proxy: undefined, noProxy: undefined, hubProtocol: 'auto' },
      stateDir: '/tmp/state',
      runtimeDir: '/tmp/run',
      log: { level: 'debug' },
      hardening: { bootGraceSeconds: 600 },
      attestation: { pcr: 15 },
      telemetry: { intervalSeconds: 15, queueLimit: 500, maxMessagesPerSecond: 20 },
    });
  });

  it.each([
    ['provisioning:\n  idscope: 0ne1', 'config /etc/iot-agent/config.yaml: provisioning.idscope: unknown key (did you mean provisioning.idScope?); expected one of idScope, globalEndpoint, registrationId, reprovision, minReprovisionSeconds, hubUnreachableSeconds, slowRetryHours'],
    ['statedir: /x', 'statedir: unknown key (did you mean stateDir?)'],
    ['color: blue', 'color: unknown key; expected one of provisioning, tpm, tls, network, stateDir, runtimeDir, log, hardening, attestation, telemetry'],
    ['provisioning:\n  reprovision: sometimes', 'provisioning.reprovision: "sometimes" is not valid: expected one of onErrorOnly, alwaysOnStartup, never'],
    ['provisioning:\n  idScope: 12', 'provisioning.idScope: 12 is not valid: expected an ID scope'],
    ['provisioning:\n  idScope: "0ne 1"', 'provisioning.idScope: "0ne 1" is not valid'],
    ['provisioning:\n  globalEndpoint: https://global.azure-devices-provisioning.net', 'provisioning.globalEndpoint: "https://global.azure-devices-provisioning.net" is not valid: expected a host name'],
    ['provisioning:\n  registrationId: Board 17', 'provisioning.registrationId: invalid registration id "Board 17"'],
    ['provisioning:\n  minReprovisionSeconds: 0', 'provisioning.minReprovisionSeconds: 0 is not valid: expected a whole number from 60 to 604800'],
    ['provisioning:\n  minReprovisionSeconds: "3600"', 'provisioning.minReprovisionSeconds: "3600" is not valid'],
    ['provisioning:\n  hubUnreachableSeconds: 10', 'provisioning.hubUnreachableSeconds: 10 is not valid: expected 0 (never) or a whole number from 30 to 604800'],
    ['provisioning:\n  hubUnreachableSeconds: -1', 'provisioning.hubUnreachableSeconds: -1 is not valid'],
    ['tpm:\n  transport: tpm0', 'tpm.transport: invalid TPM transport "tpm0": unknown kind "tpm0" (expected device, swtpm or mssim); accepted forms:'],
    ['tpm: device', 'tpm: "device" is not valid: expected a mapping of keys to values'],
    ['tls:\n  extraCaFile: ca.pem', 'tls.extraCaFile: "ca.pem" is not valid: expected an absolute path'],
    ['stateDir: [a, b]', 'stateDir: ["a","b"] is not valid: expected an absolute path'],
    ['log:\n  level: loud', 'log.level: "loud" is not valid: expected one of debug, info, warn, error'],
    ['hardening:\n  bootGraceSeconds: 5', 'hardening.bootGraceSeconds: 5 is not valid: expected a whole number from 30 to 3600'],
    ['hardening:\n  bootGraceSeconds: 90.5', 'hardening.bootGraceSeconds: 90.5 is not valid: expected a whole number'],
    ['hardening:\n  bootGraceSeconds: "300"', 'hardening.bootGraceSeconds: "300" is not valid: expected a whole number'],
    ['hardening:\n  bootgrace: 300', 'hardening.bootgrace: unknown key; expected one of bootGraceSeconds'],
    ['attestation:\n  pcr: 7', 'attestation.pcr: 7 is not valid: expected a whole number from 8 to 15'],
    ['attestation:\n  pcr: 16', 'attestation.pcr: 16 is not valid: expected a whole number from 8 to 15'],
    ['attestation:\n  pcr: "13"', 'attestation.pcr: "13" is not valid: expected a whole number'],
    ['attestation:\n  pcr: 13.5', 'attestation.pcr: 13.5 is not valid: expected a whole number'],
    ['attestation:\n  prc: 13', 'attestation.prc: unknown key (did you mean attestation.pcr?); expected one of pcr'],
    ['attestation: 13', 'attestation: 13 is not valid: expected a mapping of keys to values'],
    ['telemetry:\n  intervalSeconds: 0', 'telemetry.intervalSeconds: 0 is not valid: expected a whole number from 10 to 86400'],
    ['telemetry:\n  intervalSeconds: 9', 'telemetry.intervalSeconds: 9 is not valid: expected a whole number from 10 to 86400'],
    ['telemetry:\n  maxMessagesPerSecond: 0', 'telemetry.maxMessagesPerSecond: 0 is not valid: expected a whole number from 1 to 1000'],
    ['telemetry:\n  maxMessagesPerSecond: 2.5', 'telemetry.maxMessagesPerSecond: 2.5 is not valid: expected a whole number'],
    ['provisioning:\n  slowRetryHours: 0', 'provisioning.slowRetryHours: 0 is not valid: expected a whole number from 1 to 168'],
    ['provisioning:\n  slowRetryHours: "6"', 'provisioning.slowRetryHours: "6" is not valid: expected a whole number'],
    ['provisioning:\n  registrationId: board-', 'provisioning.registrationId: invalid registration id "board-"'],
    ['provisioning:\n  registrationId: .board', 'provisioning.registrationId: invalid registration id ".board"'],
    ['telemetry:\n  intervalSeconds: "60"', 'telemetry.intervalSeconds: "60" is not valid: expected a whole number'],
    ['telemetry:\n  queueLimit: 5', 'telemetry.queueLimit: 5 is not valid: expected a whole number from 10 to 1000000'],
    ['telemetry:\n  queuelimit: 5', 'telemetry.queuelimit: unknown key (did you mean telemetry.queueLimit?); expected one of intervalSeconds, queueLimit, maxMessagesPerSecond'],
    ['telemetry: 60', 'telemetry: 60 is not valid: expected a mapping of keys to values'],
    ['- a\n- b', 'the document: ["a","b"] is not valid: expected a mapping of keys to values'],
    ['just text', 'the document: "just text" is not valid'],
    ['tpm: {transport: [', 'is not valid YAML'],
    ['log:\n  level: info\nlog:\n  level: debug', 'is not valid YAML: Map keys must be unique'],
    ['stateDir: ' + 'x'.repeat(200), `stateDir: "${'x'.repeat(56)}... is not valid`],
  ])('rejects %j naming key, value and expectation on one line', (text, message) => {
    expect(errorOf(text).message).toContain(message);
  });

  it('reads the network section: proxy, noProxy as a list or a string, hubProtocol', () => {
    expect(DEFAULTS.network).toEqual({ proxy: undefined, noProxy: undefined, hubProtocol: 'auto' });
    expect(parseConfig('network:\n  proxy: "http://board:S3cret@proxy.acme.example:3128"\n  noProxy: [.acme.example, 10.0.0.0/8]\n  hubProtocol: mqtt-ws', 'x').network)
      .toEqual({ proxy: 'http://board:S3cret@proxy.acme.example:3128', noProxy: ['.acme.example', '10.0.0.0/8'], hubProtocol: 'mqtt-ws' });
    expect(parseConfig('network:\n  noProxy: "a.example, b.example"', 'x').network.noProxy).toEqual(['a.example', 'b.example']);
    expect(parseConfig('network:\n  noProxy: []', 'x').network.noProxy).toEqual([]);
  });

  it.each([
    ['network:\n  proxy: "https://u:S3cret@proxy:3128"', 'network.proxy: the scheme must be http://'],
    ['network:\n  proxy: "http://u:S3cret@proxy"', 'network.proxy: the proxy port is missing; expected http://[user:password@]host:port'],
    ['network:\n  proxy: "http://u:S3cret@proxy:3128/x"', 'network.proxy: a proxy URL has no path'],
    ['network:\n  proxy: "u:S3cret@proxy:3128"', 'network.proxy: '],
    ['network:\n  proxy: 3128', 'network.proxy: a number is not valid: expected a URL'],
    ['network:\n  proxy: {url: "http://u:S3cret@p:1"}', 'network.proxy: a object is not valid'],
    ['network:\n  proxy: ["http://u:S3cret@p:1"]', 'network.proxy: a list is not valid'],
  ])('refuses network.proxy %j without repeating its password', (text, message) => {
    const err = errorOf(text);
    expect(err.message).toContain(message);
    expect(err.message).not.toContain('S3cret');
  });

  it.each([
    ['network:\n  noProxy: [a.example, "b c"]', 'network.noProxy[1]: "b c" is not valid; expected a host name'],
    ['network:\n  noProxy: [10.0.0.0/40]', 'network.noProxy[0]: "10.0.0.0/40" is not a valid CIDR'],
    ['network:\n  noProxy: [42]', 'network.noProxy[0]: 42 is not valid'],
    ['network:\n  noProxy: {a: 1}', 'network.noProxy: {"a":1} is not valid: expected a list'],
    [`network:\n  noProxy: [${Array.from({ length: 65 }, (_, i) => `h${i}.example`).join(', ')}]`, 'expected a list of at most 64'],
    ['network:\n  hubProtocol: websocket', 'network.hubProtocol: "websocket" is not valid: expected one of auto, mqtt, mqtt-ws'],
    ['network:\n  hubProtocol: true', 'network.hubProtocol: true is not valid'],
    ['network:\n  proxyUrl: http://p:1', 'network.proxyUrl: unknown key; expected one of proxy, noProxy, hubProtocol'],
    ['network:\n  hubprotocol: mqtt', 'network.hubprotocol: unknown key (did you mean network.hubProtocol?)'],
    ['network: http://p:1', 'network: "http://p:1" is not valid: expected a mapping'],
  ])('refuses %j', (text, message) => {
    expect(errorOf(text).message).toContain(message);
  });

  it('requires an ID scope only where provisioning needs one', () => {
    expect(() => requireIdScope(parseConfig('', 'x'))).toThrow(/provisioning.idScope is missing/);
    expect(requireIdScope(parseConfig('provisioning:\n  idScope: 0ne0012ABCD', 'x'))).toBe('0ne0012ABCD');
  });

  it('treats a missing default file as all defaults, and a missing named file as an error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-config-'));
    await expect(loadConfig(path.join(dir, 'absent.yaml'))).rejects.toThrow(/absent.yaml: cannot be read \(ENOENT\)/);
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, 'log:\n  level: warn\n');
    expect((await loadConfig(file)).log.level).toBe('warn');
  });
});

describe('config file: bounds and forms', () => {
  it.each([
    ['provisioning', 'minReprovisionSeconds', 60, 604_800],
    ['provisioning', 'hubUnreachableSeconds', 30, 604_800],
    ['provisioning', 'slowRetryHours', 1, 168],
    ['hardening', 'bootGraceSeconds', 30, 3_600],
    ['attestation', 'pcr', 8, 15],
    ['telemetry', 'intervalSeconds', 10, 86_400],
    ['telemetry', 'queueLimit', 10, 1_000_000],
    ['telemetry', 'maxMessagesPerSecond', 1, 1_000],
  ] as const)('takes %s.%s from %i to %i and nothing beyond', (section, key, min, max) => {
    const read = (value: number) => (parseConfig(`${section}:\n  ${key}: ${value}`, 'x')[section] as unknown as Record<string, number>)[key];
    expect(read(min)).toBe(min);
    expect(read(max)).toBe(max);
    expect(errorOf(`${section}:\n  ${key}: ${min - 1}`).message).toContain(`${section}.${key}: ${min - 1} is not valid`);
    expect(errorOf(`${section}:\n  ${key}: ${max + 1}`).message).toContain(`${section}.${key}: ${max + 1} is not valid`);
  });

  it('takes an ID scope of 3 to 64 letters and digits', () => {
    expect(parseConfig('provisioning:\n  idScope: 0ne', 'x').provisioning.idScope).toBe('0ne');
    expect(parseConfig(`provisioning:\n  idScope: ${'a'.repeat(64)}`, 'x').provisioning.idScope).toBe('a'.repeat(64));
    expect(errorOf('provisioning:\n  idScope: 0n').message).toContain('provisioning.idScope: "0n" is not valid');
    expect(errorOf(`provisioning:\n  idScope: ${'a'.repeat(65)}`).message).toContain('provisioning.idScope');
    expect(errorOf('provisioning:\n  idScope: 0ne-1').message).toContain('provisioning.idScope: "0ne-1" is not valid');
  });

  it.each(['dps.example.net', 'a', 'a-b.c-d', '10.0.0.1', 'x1.example', `${'a'.repeat(63)}.net`, `${'a.'.repeat(126)}a`])('takes the DPS host name %s', (host) => {
    expect(parseConfig(`provisioning:\n  globalEndpoint: ${host}`, 'x').provisioning.globalEndpoint).toBe(host);
  });

  it.each(['-dps.example.net', 'dps-.example.net', 'dps..example.net', 'dps.example.net.', 'dps.example.net:443', 'dps_1.example.net', `${'a.'.repeat(127)}`, `${'a.'.repeat(127)}a`, '"dps example"'])(
    'refuses the DPS host name %s', (host) => {
      expect(errorOf(`provisioning:\n  globalEndpoint: ${host}`).message).toContain('provisioning.globalEndpoint');
    });

  it('takes any absolute path, and refuses one with a NUL byte', () => {
    expect(parseConfig('stateDir: "/srv/iot agent/state"', 'x').stateDir).toBe('/srv/iot agent/state');
    expect(parseConfig('runtimeDir: /', 'x').runtimeDir).toBe('/');
    expect(errorOf('stateDir: "/srv/a\\0b"').message).toContain('stateDir: "/srv/a\\u0000b" is not valid: expected an absolute path');
  });

  it('treats a key given without a value as not given', () => {
    const config = parseConfig('provisioning:\n  idScope:\n  globalEndpoint: ~\ntpm:\nstateDir:\nlog:\n  level: null\n', 'x');
    expect(config).toEqual(DEFAULTS);
  });

  it('says what a value is, cut to 60 characters', () => {
    expect(errorOf(`stateDir: ${'x'.repeat(58)}`).message).toContain(`stateDir: "${'x'.repeat(58)}" is not valid`);
    expect(errorOf(`stateDir: ${'x'.repeat(59)}`).message).toContain(`stateDir: "${'x'.repeat(56)}... is not valid`);
    expect(errorOf('log:\n  level: true').message).toContain('log.level: true is not valid: expected one of debug, info, warn, error');
  });

  it('guesses a key within two edits, and not further', () => {
    expect(errorOf('logg: {}').message).toBe('config /etc/iot-agent/config.yaml: logg: unknown key (did you mean log?); expected one of provisioning, tpm, tls, network, stateDir, runtimeDir, log, hardening, attestation, telemetry');
    expect(errorOf('stateDri: /x').message).toContain('stateDri: unknown key (did you mean stateDir?)');
    expect(errorOf('provisioning:\n  idScop: 0ne').message).toContain('provisioning.idScop: unknown key (did you mean provisioning.idScope?)');
    expect(errorOf('provisioning:\n  scope: 0ne').message).toContain('provisioning.scope: unknown key; expected one of');
    expect(errorOf('tpm:\n  transporter: x').message).toContain('tpm.transporter: unknown key (did you mean tpm.transport?)');
    expect(errorOf('tpm:\n  transporters: x').message).toContain('tpm.transporters: unknown key; expected one of transport');
    expect(errorOf('tpm:\n  trnsprt: x').message).toContain('tpm.trnsprt: unknown key (did you mean tpm.transport?)');
    expect(errorOf('tls:\n  extraCaFil: /x').message).toContain('(did you mean tls.extraCaFile?)');
    expect(errorOf('tls:\n  CAFILE: /x').message).toContain('tls.CAFILE: unknown key; expected one of extraCaFile');
    expect(errorOf('STATEDIR: /x').message).toContain('STATEDIR: unknown key (did you mean stateDir?)');
    expect(errorOf('log:\n  le: debug').message).toContain('log.le: unknown key; expected one of level');
    expect(errorOf('log:\n  lvl: debug').message).toContain('log.lvl: unknown key (did you mean log.level?)');
  });

  it('refuses a relative path anywhere a path is expected', () => {
    expect(errorOf('runtimeDir: run/iot-agent').message).toContain('runtimeDir: "run/iot-agent" is not valid: expected an absolute path');
  });

  it('gives a registration id\'s problem with its hint', () => {
    expect(errorOf('provisioning:\n  registrationId: Board').message).toBe(
      'config /etc/iot-agent/config.yaml: provisioning.registrationId: invalid registration id "Board"; use 1 to 128 characters of a-z, 0-9, \'-\', \'.\', \'_\', \':\', starting and ending with a letter or digit');
  });

  it('reads the default file when none is named, and all defaults when it is absent', async () => {
    const text = await readFile(DEFAULT_CONFIG_PATH, 'utf8').catch(() => undefined);
    expect(DEFAULT_CONFIG_PATH).toBe('/etc/iot-agent/config.yaml');
    expect(await loadConfig()).toEqual(text === undefined ? DEFAULTS : parseConfig(text, DEFAULT_CONFIG_PATH));
  });

  it('refuses a section that is a list or a value, naming it', () => {
    expect(errorOf('provisioning: [a]').message).toContain('provisioning: ["a"] is not valid: expected a mapping of keys to values');
    expect(errorOf('log: debug').message).toContain('log: "debug" is not valid: expected a mapping of keys to values');
    expect(errorOf('tls: 1').message).toContain('tls: 1 is not valid');
    expect(errorOf('hardening: x').message).toContain('hardening: "x" is not valid');
  });

  it('puts the transport\'s hint after its message', () => {
    expect(errorOf('tpm:\n  transport: swtpm:port=0').message).toMatch(/^config \/etc\/iot-agent\/config.yaml: tpm.transport: invalid TPM transport "swtpm:port=0": .*; accepted forms: /);
    expect(errorOf('tpm:\n  transport: 7').message).toContain('tpm.transport: 7 is not valid: expected a string');
  });

  it('names an unreadable file with its error code', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-config-'));
    await expect(loadConfig(dir)).rejects.toMatchObject({ message: `config ${dir}: cannot be read (EISDIR)`, exitCode: 2 });
  });

  it('names a repeated key without the position the YAML parser would add', () => {
    expect(errorOf('log:\n  level: info\nlog:\n  level: debug').message).toBe('config /etc/iot-agent/config.yaml: is not valid YAML: Map keys must be unique');
  });

  it('takes a proxy URL and noProxy entries without the spaces around them', () => {
    expect(parseConfig('network:\n  proxy: " http://proxy.example:3128 "\n  noProxy: [" a.example ", "10.0.0.0/8"]', 'x').network)
      .toMatchObject({ proxy: 'http://proxy.example:3128', noProxy: ['a.example', '10.0.0.0/8'] });
  });

  it('reads noProxy as a string with separators at either end or doubled', () => {
    expect(parseConfig('network:\n  noProxy: ", a.example,, b.example "', 'x').network.noProxy).toEqual(['a.example', 'b.example']);
  });

  it('takes 64 noProxy entries, and refuses 65', () => {
    const hosts = (n: number) => Array.from({ length: n }, (_, i) => `h${i}.example`).join(', ');
    expect(parseConfig(`network:\n  noProxy: [${hosts(64)}]`, 'x').network.noProxy).toHaveLength(64);
    expect(errorOf(`network:\n  noProxy: [${hosts(65)}]`).message).toContain('network.noProxy: ');
  });

  it('says what a noProxy entry should be when it is not text', () => {
    expect(errorOf('network:\n  noProxy: [a.example, 42]').message)
      .toBe('config /etc/iot-agent/config.yaml: network.noProxy[1]: 42 is not valid: expected a host name, .suffix, IP address or CIDR');
  });

  it('gives the first line of a YAML error only', () => {
    expect(errorOf('a: b: c').message).toMatch(/^config \/etc\/iot-agent\/config.yaml: is not valid YAML: [^\n]+$/);
  });

  it('requires the ID scope naming the file it was read from', () => {
    expect(() => requireIdScope(parseConfig('', 'x'), '/srv/agent.yaml')).toThrow(
      'config /srv/agent.yaml: provisioning.idScope is missing: expected the ID scope of your DPS instance (Azure portal, DPS overview)');
    expect(() => requireIdScope(parseConfig('', 'x'))).toThrow('config /etc/iot-agent/config.yaml: provisioning.idScope is missing');
  });
});
