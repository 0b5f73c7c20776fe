import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeApplyRequest, MAX_REQUEST_BYTES, parseApplyRequest, readApplyRequest } from '../../hardening/apply-request.js';

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
    ['no targets', { ...good, confirmTargets: [] }, /must list 1 to 8/],
    ['too many targets', { ...good, confirmTargets: Array(9).fill('hub:443') }, /must list 1 to 8/],
    ['a timeout out of range', { ...good, confirmTimeoutSeconds: 1e9 }, /whole seconds from 1 to 3600/],
    ['a timeout as text', { ...good, confirmTimeoutSeconds: '30' }, /whole seconds/],
    ['a request id with a newline', { ...good, requestId: 'a\nb' }, /requestId/],
    ['another version', { ...good, version: 2 }, /version must be 1/],
    ['a list', [good], /not a JSON object/],
  ])('refuses %s', (_name, value, message) => {
    expect(() => parseApplyRequest(text(value), 'strict')).toThrow(message);
  });

  it('refuses text that is not JSON, naming no content', () => {
    expect(() => parseApplyRequest('root:$y$j9T$secret:19000:0:99999:7:::', 'strict')).toThrow(/^apply request refused: not valid JSON$/);
  });
});

describe('reading the request file the agent controls', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-request-'));
  const file = path.join(dir, 'harden-request.json');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fresh = () => rmSync(file, { force: true });

  it('reads a regular file once and parses it', async () => {
    fresh();
    writeFileSync(file, text(good));
    expect(await readApplyRequest(file, 'strict')).toMatchObject({ requestId: 'ab12-cd34', confirmTimeoutSeconds: 30 });
  });

  it('never follows a symbolic link (to /etc/shadow, say)', async () => {
    fresh();
    symlinkSync('/etc/shadow', file);
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/refused .*harden-request\.json: it is a symbolic link$/);
  });

  it('does not block on a FIFO', async () => {
    fresh();
    execFileSync('mkfifo', [file]);
    await expect(readApplyRequest(file, 'strict')).rejects.toThrow(/it is not a regular file/);
  });

  it('refuses a hard link, a file owned by someone else than its directory\'s owner, and an oversized file', async () => {
    fresh();
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
    const open = path.join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    writeFileSync(path.join(open, 'r.json'), text(good));
    await expect(readApplyRequest(path.join(open, 'r.json'), 'strict')).rejects.toThrow(/its directory is writable by everyone/);
  });
});
