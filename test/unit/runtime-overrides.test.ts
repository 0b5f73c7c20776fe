import { describe, expect, it } from 'vitest';
import { AgentError, ExitCode } from '../../agent/lib/errors.js';
import { PRODUCTION_SITE } from '../../agent/hardening-bridge/site.js';
import { FAST_BACKOFF, parseHardeningSite, parseRebootOverride, parseTestTimings, runtimeOverrides } from '../../agent/runtime-overrides.js';

/** The error a parse throws, so its exit code and hint can be checked too. */
function refusal(parse: () => unknown): AgentError {
  try {
    parse();
  } catch (err) {
    if (err instanceof AgentError) return err;
    throw new Error(`not an AgentError: ${String(err)}`, { cause: err });
  }
  throw new Error('parsed without an error');
}

describe('runtime overrides from the environment', () => {
  it('takes nothing from an empty environment', () => {
    expect(runtimeOverrides({})).toEqual({});
  });

  it('takes IOT_AGENT_TPM, trimmed, and refuses a bad one naming the variable', () => {
    expect(runtimeOverrides({ IOT_AGENT_TPM: ' swtpm:port=2400 ' }).tpmTransport).toBe('swtpm:port=2400');
    expect(runtimeOverrides({ IOT_AGENT_TPM: '   ' }).tpmTransport).toBeUndefined();
    expect(() => runtimeOverrides({ IOT_AGENT_TPM: 'tpm0' })).toThrow(/^IOT_AGENT_TPM: invalid TPM transport "tpm0"/);
    expect(refusal(() => runtimeOverrides({ IOT_AGENT_TPM: 'tpm0' })).exitCode).toBe(ExitCode.usage);
  });

  it('keeps a bad IOT_AGENT_TPM as given for the commands that report it as a failed check', () => {
    expect(runtimeOverrides({ IOT_AGENT_TPM: ' tpm0 ' }, { tpmAsGiven: true }).tpmTransport).toBe('tpm0');
  });

  it('parses every knob in one go', () => {
    expect(runtimeOverrides({
      IOT_AGENT_TPM: 'swtpm:port=2400', IOT_AGENT_TEST_TIMINGS: 'keepAlive=5', IOT_AGENT_HARDENING_TEST: 'netns=n1,root=/tmp/r',
      IOT_AGENT_REBOOT_COMMAND: '["/bin/true"]', IOT_AGENT_REBOOT_DELAY_SECONDS: '1',
    })).toEqual({
      tpmTransport: 'swtpm:port=2400', timings: { keepAliveSeconds: 5 }, hardeningSite: { root: '/tmp/r', netns: 'n1', backend: 'auto' },
      reboot: { argv: ['/bin/true'], delaySeconds: 1 },
    });
  });

  it('reads test timings as key=value pairs, later keys winning', () => {
    expect(parseTestTimings('keepAlive=5,backoff=fast,spread=0,minReprovision=0,keepAlive=3')).toEqual({
      keepAliveSeconds: 3, backoff: FAST_BACKOFF, reconnectSpreadMs: 0, minReprovisionSeconds: 0,
    });
    expect(parseTestTimings('tokenLifetime=8')).toEqual({ tokenLifetimeSeconds: 8, tokenRenewalMarginSeconds: 2 });
    expect(parseTestTimings('backoff=fast,backoff=default').backoff).toBeUndefined();
    expect(parseTestTimings(' , ')).toEqual({});
    expect(parseTestTimings('hubProbe=3')).toEqual({ hubProbeSeconds: 3 });
  });

  it.each([
    ['0,0,5', '"0": expected one of tokenLifetime=…'],
    ['keepAlive', '"keepAlive": expected one of'],
    ['keepAlive=', 'keepAlive=: expected whole seconds from 1 to 3600'],
    ['keepAlive=0', 'keepAlive=0: expected whole seconds'],
    ['keepAlive=1.5', 'keepAlive=1.5'],
    ['keepAlive=-1', 'keepAlive=-1'],
    ['spread=9999999', 'spread=9999999'],
    ['hubProbe=0', 'hubProbe=0: expected whole seconds from 1 to 600'],
    ['backoff=slow', 'backoff=slow: expected backoff=fast or backoff=default'],
    ['tokenLifetime=4,renewalMargin=4', 'renewalMargin must be below tokenLifetime'],
    ['colour=blue', '"colour=blue": expected one of'],
  ])('refuses IOT_AGENT_TEST_TIMINGS %j', (spec, message) => {
    expect(() => parseTestTimings(spec)).toThrow(`IOT_AGENT_TEST_TIMINGS ${message}`);
    expect(refusal(() => runtimeOverrides({ IOT_AGENT_TEST_TIMINGS: spec })).exitCode).toBe(ExitCode.usage);
  });
});

describe('where the hardening commands apply profiles (IOT_AGENT_HARDENING_TEST)', () => {
  it('is the real root and namespace unless the variable names a sandbox', () => {
    expect(runtimeOverrides({}).hardeningSite).toBeUndefined();
  });

  it('is a test namespace and temporary root when the variable names them', () => {
    expect(parseHardeningSite('netns=iotagent-1-d,root=/tmp/r,backend=nft,confirm=10.200.1.2:8883;10.200.1.2:443')).toEqual({
      root: '/tmp/r', netns: 'iotagent-1-d', backend: 'nft', confirmTargets: [{ host: '10.200.1.2', port: 8883 }, { host: '10.200.1.2', port: 443 }],
    });
  });

  it.each([
    ['netns=x,root=/', /never \//],
    ['netns=x', /root=/],
    ['root=/tmp/r', /netns=/],
    ['netns=a b,root=/tmp/r', /netns=/],
    ['netns=x,root=/tmp/r,backend=pf', /backend must be one of/],
    ['netns=x,root=/tmp/r,confirm=10.0.0.2', /confirm: invalid host:port "10.0.0.2"/],
    ['netns=x,root=/tmp/r,confirm=10.0.0.2:99999', /confirm: invalid host:port/],
    ['', /root=/],
  ])('refuses a test override that could reach this machine, naming the variable: %j', (spec, message) => {
    const err = refusal(() => parseHardeningSite(spec));
    expect(err.message).toMatch(/^IOT_AGENT_HARDENING_TEST /);
    expect(err.message).toMatch(message);
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.hint).toMatch(/test knob/);
  });
  it('is the production root with the backend the engine picks otherwise', () => {
    expect(PRODUCTION_SITE).toStrictEqual({ root: '/', backend: 'auto' });
  });

  it('takes the backend the engine picks, and the hub and DPS of the moment, unless the override names them', () => {
    expect(parseHardeningSite('root=/tmp/r,netns=ns-1')).toStrictEqual({ root: '/tmp/r', netns: 'ns-1', backend: 'auto' });
    expect(parseHardeningSite('root=/tmp/r,netns=ns-1,backend=legacy')).toMatchObject({ backend: 'legacy' });
  });

  it.each([
    ['netns=x,root=tmp/r', /root=<absolute temporary directory>, never \//],
    ['netns=x,root=', /root=/],
    [`netns=${'a'.repeat(65)},root=/tmp/r`, /netns=<a namespace the test created>/],
    ['netns=-x,root=/tmp/r', /netns=/],
    ['netns=x/y,root=/tmp/r', /netns=/],
    ['netns=x,root=/tmp/r,backend=', /backend must be one of auto, nft, legacy/],
  ])('refuses the override %j', (spec, message) => {
    expect(() => runtimeOverrides({ IOT_AGENT_HARDENING_TEST: spec })).toThrow(message);
  });

  it('takes a namespace name of up to 64 characters', () => {
    expect(parseHardeningSite(`netns=A${'b_.-'.repeat(15)}xyz,root=/tmp/r`).netns).toHaveLength(64);
  });
});

describe('the reboot program a test records (IOT_AGENT_REBOOT_COMMAND)', () => {
  it('takes a JSON argv and an optional delay in whole seconds', () => {
    expect(parseRebootOverride('["/bin/true","x"]', '0')).toEqual({ argv: ['/bin/true', 'x'], delaySeconds: 0 });
    expect(parseRebootOverride('["/bin/true"]', undefined)).toEqual({ argv: ['/bin/true'] });
    expect(parseRebootOverride('["/bin/true"]', '')).toEqual({ argv: ['/bin/true'] });
    expect(runtimeOverrides({ IOT_AGENT_REBOOT_DELAY_SECONDS: '3' }).reboot).toBeUndefined();
  });

  it.each(['"/sbin/reboot"', '[oops', '[]', '[1]', '{"argv":["x"]}', 'null'])('refuses a command that is not a JSON array of strings: %j', (command) => {
    const err = refusal(() => runtimeOverrides({ IOT_AGENT_REBOOT_COMMAND: command }));
    expect(err.message).toBe('IOT_AGENT_REBOOT_COMMAND must be a JSON array of strings (the program and its arguments)');
    expect(err.exitCode).toBe(ExitCode.usage);
  });

  it.each(['soon', '-1', '1.5', 'Infinity', '3601', '99999'])('refuses a delay that is not whole seconds up to an hour: %j', (delay) => {
    expect(() => parseRebootOverride('["/bin/true"]', delay)).toThrow(`IOT_AGENT_REBOOT_DELAY_SECONDS=${delay}: expected whole seconds from 0 to 3600`);
  });
});

describe('runtime overrides: each knob and its bounds', () => {
  it('refuses a bad IOT_AGENT_TPM as a usage error, with the transport\'s hint', () => {
    const err = refusal(() => runtimeOverrides({ IOT_AGENT_TPM: 'tpm0' }));
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.hint).toContain('swtpm:host=');
  });

  it('takes the hardening sandbox and the recorded reboot from their variables, and nothing else', () => {
    const overrides = runtimeOverrides({
      IOT_AGENT_HARDENING_TEST: 'root=/tmp/sandbox,netns=iot-test-1',
      IOT_AGENT_REBOOT_COMMAND: '["touch","/tmp/rebooted"]',
      IOT_AGENT_TEST_TIMINGS: 'keepAlive=5',
      PATH: '/usr/bin',
    });
    expect(overrides).toEqual({
      hardeningSite: { root: '/tmp/sandbox', netns: 'iot-test-1', backend: 'auto' },
      reboot: { argv: ['touch', '/tmp/rebooted'] },
      timings: { keepAliveSeconds: 5 },
    });
  });

  it.each([
    ['tokenLifetime', 2, 86_400, 'tokenLifetimeSeconds'],
    ['renewalMargin', 1, 86_400, 'tokenRenewalMarginSeconds'],
    ['keepAlive', 1, 3_600, 'keepAliveSeconds'],
    ['minReprovision', 0, 86_400, 'minReprovisionSeconds'],
    ['hubUnreachable', 1, 604_800, 'hubUnreachableSeconds'],
    ['hubWait', 1, 600, 'hubWaitSeconds'],
    ['telemetrySecondMs', 10, 1_000, 'telemetrySecondMs'],
    ['heapTrim', 1, 600, 'heapTrimSeconds'],
  ] as const)('takes %s from %i to %i and nothing beyond', (key, min, max, field) => {
    expect(parseTestTimings(`${key}=${min}`)[field]).toBe(min);
    expect(parseTestTimings(`${key}=${max}`)[field]).toBe(max);
    expect(() => parseTestTimings(`${key}=${min - 1}`)).toThrow(`${key}=${min - 1}: expected whole seconds from ${min} to ${max}`);
    expect(() => parseTestTimings(`${key}=${max + 1}`)).toThrow(`${key}=${max + 1}: expected whole seconds from ${min} to ${max}`);
  });

  it('makes backoff=fast start at 200 ms and double up to 2 s', () => {
    expect(parseTestTimings('backoff=fast').backoff).toEqual({ initialMs: 200, maxMs: 2_000, multiplier: 2 });
  });

  it('takes spread in seconds, from 0 to an hour, and hands it on in milliseconds', () => {
    expect(parseTestTimings('spread=3').reconnectSpreadMs).toBe(3_000);
    expect(parseTestTimings('spread=3600').reconnectSpreadMs).toBe(3_600_000);
    expect(() => parseTestTimings('spread=3601')).toThrow('spread=3601: expected whole seconds from 0 to 3600');
  });

  it('refuses numbers that are not plain digits', () => {
    for (const value of ['0x10', '1e3', '+5', ' 5', '5 s', '1234567']) {
      expect(() => parseTestTimings(`keepAlive=${value}`), value).toThrow('IOT_AGENT_TEST_TIMINGS');
    }
  });

  it('renews a shortened token a quarter of its lifetime before expiry, at least a second before', () => {
    expect(parseTestTimings('tokenLifetime=2').tokenRenewalMarginSeconds).toBe(1);
    expect(parseTestTimings('tokenLifetime=7').tokenRenewalMarginSeconds).toBe(1);
    expect(parseTestTimings('tokenLifetime=9').tokenRenewalMarginSeconds).toBe(2);
    expect(parseTestTimings('tokenLifetime=6,renewalMargin=5')).toEqual({ tokenLifetimeSeconds: 6, tokenRenewalMarginSeconds: 5 });
    expect(parseTestTimings('renewalMargin=50')).toEqual({ tokenRenewalMarginSeconds: 50 });
  });

  it('says which keys it knows and that the knob is for tests', () => {
    let caught: unknown;
    try {
      parseTestTimings('colour=blue');
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({
      message: 'IOT_AGENT_TEST_TIMINGS "colour=blue": expected one of tokenLifetime=…, renewalMargin=…, keepAlive=…, spread=…, minReprovision=…, hubUnreachable=…, hubProbe=…, hubWait=…, telemetrySecondMs=…, heapTrim=…, backoff=…',
      exitCode: ExitCode.usage,
      hint: 'a test knob; unset it for production',
    });
  });
});
