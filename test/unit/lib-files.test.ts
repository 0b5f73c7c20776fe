import { execFileSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { isHostName } from '../../agent/lib/host-name.js';
import { readUntrustedFile } from '../../agent/lib/untrusted-file.js';
import { quoted } from '../../agent/lib/validate.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-untrusted-'));
  dirs.push(dir);
  return dir;
}

async function refusal(file: string, maxBytes = 1024): Promise<string> {
  const err = await readUntrustedFile(file, maxBytes).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AgentError);
  return (err as Error).message;
}

describe('host names', () => {
  it.each([
    'hub-1.azure-devices.net', 'global.azure-devices-provisioning.net', 'localhost', 'a', 'hub.', '10.0.0.2', '::1', 'fe80::1',
    `${'a'.repeat(63)}.example`, `${'a.'.repeat(126)}b`, '0-a.b-0',
  ])('takes %s', (name) => {
    expect(isHostName(name)).toBe(true);
  });

  it.each([
    '', '.', 'hub..net', '-hub.net', 'hub-.net', 'hub.net:8883', 'https://hub.net', 'hub net', 'hub\n.net', 'hub/x', 'hub_1.net',
    `${'a'.repeat(64)}.example`, `${'a.'.repeat(126)}bc`, '10.0.0.2:443', '[::1]',
  ])('refuses %j', (name) => {
    expect(isHostName(name)).toBe(false);
  });

  it('quotes a value for an error message, escaped and cut at 80 characters unless told otherwise', () => {
    expect(quoted('hub\n"x"')).toBe('"hub\\n\\"x\\""');
    expect(quoted('a'.repeat(80))).toBe(`"${'a'.repeat(80)}"`);
    expect(quoted('a'.repeat(81))).toBe(`"${'a'.repeat(80)}…"`);
    expect(quoted('abcdef', 3)).toBe('"abc…"');
    expect(quoted(8883)).toBe('"8883"');
    expect(quoted(undefined)).toBe('"undefined"');
  });
});

describe('reading a file a less trusted user writes', () => {
  afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }); });

  it('reads a small regular UTF-8 file', async () => {
    const file = path.join(tempDir(), 'request.json');
    writeFileSync(file, '{"profile":"strict","note":"é"}');
    expect(await readUntrustedFile(file, 1024)).toBe('{"profile":"strict","note":"é"}');
  });

  it('reads a file of exactly the size allowed, and refuses one byte more', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'fits'), 'x'.repeat(100));
    writeFileSync(path.join(dir, 'big'), 'x'.repeat(101));
    expect(await readUntrustedFile(path.join(dir, 'fits'), 100)).toBe('x'.repeat(100));
    expect(await refusal(path.join(dir, 'big'), 100)).toBe(`refused ${path.join(dir, 'big')}: it is 101 bytes, more than 100`);
  });

  it('reads an empty file as empty text', async () => {
    const file = path.join(tempDir(), 'empty');
    writeFileSync(file, '');
    expect(await readUntrustedFile(file, 10)).toBe('');
  });

  it('says a missing file does not exist', async () => {
    const file = path.join(tempDir(), 'absent.json');
    expect(await refusal(file)).toBe(`${file} does not exist`);
  });

  it('refuses a file whose directory is missing or not a directory', async () => {
    const dir = tempDir();
    expect(await refusal(path.join(dir, 'gone', 'x.json'))).toBe(`refused ${path.join(dir, 'gone', 'x.json')}: its directory cannot be read (ENOENT)`);
    writeFileSync(path.join(dir, 'plain'), '');
    expect(await refusal(path.join(dir, 'plain', 'x.json'))).toBe(`refused ${path.join(dir, 'plain', 'x.json')}: its directory is not a directory`);
  });

  it('refuses a file in a directory everyone can write to', async () => {
    const dir = tempDir();
    const open = path.join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    writeFileSync(path.join(open, 'x.json'), '{}');
    expect(await refusal(path.join(open, 'x.json'))).toBe(`refused ${path.join(open, 'x.json')}: its directory is writable by everyone`);
    chmodSync(open, 0o775);
    expect(await readUntrustedFile(path.join(open, 'x.json'), 10)).toBe('{}');
  });

  it('never follows a symbolic link, even to a file it could read', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'target'), 'secret');
    symlinkSync(path.join(dir, 'target'), path.join(dir, 'link'));
    expect(await refusal(path.join(dir, 'link'))).toBe(`refused ${path.join(dir, 'link')}: it is a symbolic link`);
  });

  it('refuses a directory and a FIFO without blocking on it', async () => {
    const dir = tempDir();
    mkdirSync(path.join(dir, 'sub'));
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    expect(await refusal(path.join(dir, 'sub'))).toBe(`refused ${path.join(dir, 'sub')}: it is not a regular file`);
    expect(await refusal(path.join(dir, 'fifo'))).toBe(`refused ${path.join(dir, 'fifo')}: it is not a regular file`);
  });

  it('refuses a file with a second hard link', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'x.json'), '{}');
    linkSync(path.join(dir, 'x.json'), path.join(dir, 'alias.json'));
    expect(await refusal(path.join(dir, 'x.json'))).toBe(`refused ${path.join(dir, 'x.json')}: it has 2 links`);
  });

  it('refuses text that is not UTF-8, and never quotes the content', async () => {
    const file = path.join(tempDir(), 'x.json');
    writeFileSync(file, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    const err = await readUntrustedFile(file, 100).catch((e: unknown) => e as AgentError);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).message).toBe(`refused ${file}: it is not UTF-8 text`);
    expect((err as AgentError).cause).toBeInstanceOf(TypeError);
  });

  it('keeps the cause of a refusal for the log', async () => {
    const dir = tempDir();
    symlinkSync('/etc/hostname', path.join(dir, 'link'));
    const err = await readUntrustedFile(path.join(dir, 'link'), 100).catch((e: unknown) => e as AgentError);
    expect((err as AgentError).cause).toMatchObject({ code: 'ELOOP' });
  });

  it('refuses a file it cannot open, naming the reason', async () => {
    const socket = path.join(tempDir(), 'control.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      expect(await refusal(socket)).toBe(`refused ${socket}: it cannot be opened (ENXIO)`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
