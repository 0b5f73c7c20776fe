import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { restoreCommand, saveCommand, BACKENDS } from '../../hardening/backend.js';
import { toolIdentity } from '../../hardening/tool-identity.js';

const savedPath = process.env.PATH;
const dirs: string[] = [];
afterEach(() => {
  process.env.PATH = savedPath;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-tools-'));
  dirs.push(dir);
  return dir;
}

const identityOf = (name: string, file: string) => {
  const s = statSync(file);
  return `${name}:${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
};

describe('which binary a tool name runs', () => {
  it('is the file in the first PATH directory that has it, by device, inode, size and mtime', async () => {
    const [a, b] = [tempDir(), tempDir()];
    writeFileSync(path.join(a, 'iot-agent-save'), 'first');
    writeFileSync(path.join(b, 'iot-agent-save'), 'second!');
    process.env.PATH = `${a}:${b}`;
    expect(await toolIdentity('iot-agent-save')).toBe(identityOf('iot-agent-save', path.join(a, 'iot-agent-save')));
  });

  it('follows the alternatives symlink, so switching it between nft and legacy changes the identity', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'xtables-nft-multi'), 'nft');
    writeFileSync(path.join(dir, 'xtables-legacy-multi'), 'legacy');
    symlinkSync(path.join(dir, 'xtables-nft-multi'), path.join(dir, 'iot-agent-save'));
    process.env.PATH = dir;
    const nft = await toolIdentity('iot-agent-save');
    expect(nft).toBe(identityOf('iot-agent-save', path.join(dir, 'xtables-nft-multi')));
    rmSync(path.join(dir, 'iot-agent-save'));
    symlinkSync(path.join(dir, 'xtables-legacy-multi'), path.join(dir, 'iot-agent-save'));
    expect(await toolIdentity('iot-agent-save')).not.toBe(nft);
  });

  it('skips a directory of that name and PATH entries that are not absolute', async () => {
    const top = tempDir();
    mkdirSync(path.join(top, 'rel'));
    writeFileSync(path.join(top, 'rel', 'iot-agent-save'), 'relative');
    mkdirSync(path.join(top, 'dir', 'iot-agent-save'), { recursive: true });
    const real = tempDir();
    writeFileSync(path.join(real, 'iot-agent-save'), 'real');
    process.env.PATH = `${path.relative(process.cwd(), path.join(top, 'rel'))}:${path.join(top, 'dir')}:${real}`;
    expect(await toolIdentity('iot-agent-save')).toBe(identityOf('iot-agent-save', path.join(real, 'iot-agent-save')));
  });

  it('is null for a tool found nowhere', async () => {
    process.env.PATH = tempDir();
    expect(await toolIdentity('iot-agent-no-such-tool')).toBeNull();
  });

  it('looks in the system directories too, even without a PATH', async () => {
    delete process.env.PATH;
    expect(await toolIdentity('sysctl')).toBe(identityOf('sysctl', '/usr/sbin/sysctl'));
    expect(await toolIdentity('sh')).toMatch(/^sh:\d+:\d+:\d+:[\d.]+$/);
  });
});

describe('which iptables tools a backend runs', () => {
  it('are the ones the system selects for auto, the nft or legacy ones otherwise', () => {
    expect(BACKENDS).toEqual(['auto', 'nft', 'legacy']);
    expect(saveCommand('auto', 4)).toEqual(['iptables-save', '-t', 'filter']);
    expect(saveCommand('nft', 6)).toEqual(['ip6tables-nft-save', '-t', 'filter']);
    expect(saveCommand('legacy', 4)).toEqual(['iptables-legacy-save', '-t', 'filter']);
  });

  it('restore without flushing other chains, waiting for the xtables lock, and --test only when testing', () => {
    expect(restoreCommand('auto', 6, false)).toEqual(['ip6tables-restore', '--noflush', '--wait']);
    expect(restoreCommand('legacy', 4, true)).toEqual(['iptables-legacy-restore', '--noflush', '--wait', '--test']);
  });
});
