import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import {
  APPLY_REQUEST_FILE, ApplyRequestError, encodeApplyRequest, MAX_CONFIRM_TARGETS, MAX_REQUEST_BYTES, parseApplyRequest, readApplyRequest,
} from '../../hardening/apply-request.js';

const good = { version: 1, requestId: 'ab12-cd34', profile: 'strict', confirmTimeoutSeconds: 30, confirmTargets: ['hub-1.azure-devices.net:8883', 'global.azure-devices-provisioning.net:443'] };
const text = (value: unknown) => JSON.stringify(value);

describe('the agent\'s apply request, as the root unit parses it', () => {
  it('is what the agent writes: every endpoint, the timeout and the request id', () => {
    const written = encodeApplyRequest({ requestId: 'ab12-cd34', profile: 'strict', confirmTimeoutSeconds: 30,
      confirmTargets: [{ host: 'hub-1.azure-devices.net', port: 8883 }, { host: 'global.azure-devices-provisioning.net', port: 443 }, { host: 'fd00::1', port: 443 }] });
    expect(JSON.parse(written)).toEqual({ ...good, confirmTargets: [...good.confirmTargets, '[fd00::1]:443'] });
    expect(parseApplyRequest(written, 'strict').confirmTargets).toHaveLength(3);
  });

  it.each([
    ['an unknown key', { ...good, NODE_OPTIONS: '--require=/var/lib/iot-agent/x.js' }, /unknown key\(s\) "NODE_OPTIONS"/],
    ['a profile other than the unit\'s', { ...good, profile: 'baseline' }, /it is for profile baseline, not "strict"/],
    ['a path as profile', { ...good, profile: '../../var/lib/iot-agent/evil' }, /profile must be a profile name/],
    ['a newline in a target', { ...good, confirmTargets: ['hub\nWATCHDOG=trigger:8883'] }, /confirmTargets\[0\] is not a host:port/],
    ['an option as a target', { ...good, confirmTargets: ['--boot'] }, /confirmTargets\[0\] is not a host:port/],
    ['a number as a target', { ...good, confirmTargets: [8883] }, /confirmTargets\[0\] is not a host:port/],
    ['a target inside a list', { ...good, confirmTargets: [['hub:443']] }, /confirmTargets\[0\] is not a host:port/],
    ['no targets', { ...good, confirmTargets: [] }, /must list 1 to 8/],
    ['too many targets', { ...good, confirmTargets: Array(9).fill('hub:443') }, /must list 1 to 8/],
    ['a timeout out of range', { ...good, confirmTimeoutSeconds: 1e9 }, /whole seconds from 1 to 3600/],
    ['a timeout as text', { ...good, confirmTimeoutSeconds: '30' }, /whole seconds/],
    ['a request id with a newline', { ...good, requestId: 'a\nb' }, /requestId/],
    ['another version', { ...good, version: 2 }, /version must be 1/],
    ['a list', [good], /not a JSON object/],
    ['null', null, /not a JSON object/],
    ['a string', 'strict', /not a JSON object/],
    ['a missing version', { ...good, version: undefined }, /version must be 1/],
    ['a profile that is not text', { ...good, profile: 5 }, /profile must be a profile name/],
    ['a request id that is not text', { ...good, requestId: 12 }, /requestId must be 1-64 letters, digits and -/],
    ['an empty request id', { ...good, requestId: '' }, /requestId/],
    ['a request id of 65 characters', { ...good, requestId: 'a'.repeat(65) }, /requestId/],
    ['a request id with an underscore', { ...good, requestId: 'a_b' }, /requestId/],
    ['a timeout of zero', { ...good, confirmTimeoutSeconds: 0 }, /whole seconds from 1 to 3600/],
    ['a timeout of 3601 s', { ...good, confirmTimeoutSeconds: 3601 }, /whole seconds from 1 to 3600/],
    ['a fractional timeout', { ...good, confirmTimeoutSeconds: 1.5 }, /whole seconds from 1 to 3600/],
    ['no timeout', { ...good, confirmTimeoutSeconds: undefined }, /whole seconds from 1 to 3600/],
    ['targets as one string', { ...good, confirmTargets: 'hub:443' }, /confirmTargets must list 1 to 8 host:port endpoints/],
    ['a bad second target', { ...good, confirmTargets: ['hub:443', 'hub:0'] }, /^apply request refused: confirmTargets\[1\] is not a host:port$/],
  ])('refuses %s', (_name, value, message) => {
    expect(() => parseApplyRequest(text(value), 'strict')).toThrow(message);
  });

  it('accepts the edges: a timeout of 1 s and of an hour, 8 targets, a request id of 64', () => {
    const edges = { ...good, requestId: `A-${'9'.repeat(62)}`, confirmTimeoutSeconds: 3600, confirmTargets: Array(MAX_CONFIRM_TARGETS).fill('[fd00::1]:443') };
    expect(parseApplyRequest(text(edges), 'strict')).toEqual({
      requestId: edges.requestId, profile: 'strict', confirmTimeoutSeconds: 3600, confirmTargets: Array(8).fill({ host: 'fd00::1', port: 443 }),
    });
    expect(parseApplyRequest(text({ ...good, confirmTimeoutSeconds: 1 }), 'strict').confirmTimeoutSeconds).toBe(1);
  });

  it('names at most five unknown keys, each cut to 40 characters', () => {
    const extra = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((k) => [k.repeat(50), 1]));
    expect(() => parseApplyRequest(text({ ...good, ...extra }), 'strict'))
      .toThrow(new RegExp(`^apply request refused: unknown key\\(s\\) ${['a', 'b', 'c', 'd', 'e'].map((k) => `"${k.repeat(40)}"`).join(', ')}$`));
  });

  it('quotes at most 64 characters of the unit\'s profile when the request is for another', () => {
    expect(() => parseApplyRequest(text(good), `x${'y'.repeat(100)}`)).toThrow(`it is for profile strict, not "x${'y'.repeat(63)}"`);
  });

  it('is a usage error that says nothing was applied', () => {
    const err = new ApplyRequestError('why');
    expect(err).toMatchObject({ name: 'ApplyRequestError', message: 'apply request refused: why', exitCode: 2, hint: 'the agent writes the request; nothing was applied' });
  });

  it('is never written when the root side would refuse it', () => {
    expect(() => encodeApplyRequest({ requestId: 'r1', profile: 'strict', confirmTimeoutSeconds: 0, confirmTargets: [{ host: 'hub', port: 443 }] }))
      .toThrow(/whole seconds from 1 to 3600/);
    expect(encodeApplyRequest({ requestId: 'r1', profile: 'strict', confirmTimeoutSeconds: 5, confirmTargets: [{ host: 'hub', port: 443 }] }))
      .toBe('{"version":1,"requestId":"r1","profile":"strict","confirmTimeoutSeconds":5,"confirmTargets":["hub:443"]}\n');
  });

  it('lives at the path the root unit names', () => {
    expect(APPLY_REQUEST_FILE).toBe('/run/iot-agent/harden-request.json');
    expect(readFileSync(new URL('../../systemd/iot-agent-harden-apply@.service', import.meta.url), 'utf8')).toContain(`--request=${APPLY_REQUEST_FILE}\n`);
  });

  it('refuses text that is not JSON, naming no content', () => {
    expect(() => parseApplyRequest('root:$y$j9T$secret:19000:0:99999:7:::', 'strict')).toThrow(/^apply request refused: not valid JSON$/);
  });
});

describe('reading the request file the agent controls', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  /** A fresh runtime directory and the request's path in it. */
  const place = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-request-'));
    dirs.push(dir);
    const file = path.join(dir, 'harden-request.json');
    return { dir, file, fresh: () => rmSync(file, { force: true }) };
  };

  it('reads a regular file once and parses it', async () => {
    const { file } = place();
    writeFileSync(file, text(good));
    expect(await readApplyRequest(file, 'strict')).toMatchObject({ requestId: 'ab12-cd34', confirmTimeoutSeconds: 30 });
  });

  it('refuses a request that is not there, or not for this unit\'s profile', async () => {
    const { file } = place();
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(`apply request refused: ${file} does not exist`);
    writeFileSync(file, text(good));
    await expect(readApplyRequest(file, 'baseline')).rejects.toThrow(ApplyRequestError);
  });

  it('never follows a symbolic link (to /etc/shadow, say)', async () => {
    const { file } = place();
    symlinkSync('/etc/shadow', file);
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/refused .*harden-request\.json: it is a symbolic link$/);
  });

  it('does not block on a FIFO', async () => {
    const { file } = place();
    execFileSync('mkfifo', [file]);
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/it is not a regular file/);
  });

  it('refuses a hard link, a file owned by someone else than its directory\'s owner, and an oversized file', async () => {
    const { dir, file, fresh } = place();
    const other = path.join(dir, 'other');
    writeFileSync(other, text(good));
    linkSync(other, file);
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/it has 2 links/);
    fresh();
    rmSync(other);
    writeFileSync(file, text(good));
    execFileSync('chown', ['65534', file]);
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/owned by uid 65534, not by its directory's owner 0/);
    fresh();
    writeFileSync(file, ' '.repeat(MAX_REQUEST_BYTES + 1));
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/more than 4096/);
  });

  it('refuses a file in a directory everyone may write', async () => {
    const open = path.join(place().dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    writeFileSync(path.join(open, 'r.json'), text(good));
    await expect(readApplyRequest(path.join(open, 'r.json'), 'strict')).rejects.toThrow(/its directory is writable by everyone/);
  });
});
