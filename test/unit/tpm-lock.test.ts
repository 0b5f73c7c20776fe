import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DAEMON_LOCK_OWNER, TpmLock } from '../../agent/tpm/tpm-lock.js';

const scratchDirs: string[] = [];
const scratch = () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-tpm-lock-'));
  scratchDirs.push(dir);
  return dir;
};
const runtimeDir = () => path.join(scratch(), 'run');

afterEach(() => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const lockFile = (dir: string) => path.join(dir, 'tpm.lock');

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

describe('the TPM lock', () => {
  it('is taken in an owner-only runtime directory, naming this process and its owner', async () => {
    const dir = runtimeDir();
    const lock = await TpmLock.acquire(dir, 'iot-agent provision');
    expect(readFileSync(lockFile(dir), 'utf8')).toBe(`${process.pid} iot-agent provision\n`);
    expect(statSync(lockFile(dir)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o077).toBe(0);
    expect(await TpmLock.holder(dir)).toEqual({ pid: process.pid, owner: 'iot-agent provision' });
    await lock.release();
    expect(existsSync(lockFile(dir))).toBe(false);
    expect(await TpmLock.holder(dir)).toBeUndefined();
    await lock.release();
  });

  it('tells the CLI when the daemon holds it', async () => {
    const dir = runtimeDir();
    await TpmLock.acquire(dir, DAEMON_LOCK_OWNER);
    expect(await TpmLock.holder(dir)).toEqual({ pid: process.pid, owner: 'the iot-agent daemon' });
  });

  it('refuses while another live process holds it, naming that process', async () => {
    const dir = runtimeDir();
    await TpmLock.acquire(dir, 'x');
    writeFileSync(lockFile(dir), `${process.ppid} the iot-agent daemon\n`);
    await expect(TpmLock.acquire(dir, 'iot-agent provision')).rejects.toMatchObject({
      message: `the TPM is in use by the iot-agent daemon (pid ${process.ppid})`,
      hint: 'wait for it to finish, or stop the iot-agent service first',
    });
    writeFileSync(lockFile(dir), `${process.ppid}\n`);
    await expect(TpmLock.acquire(dir, 'iot-agent provision')).rejects.toThrow(`the TPM is in use by another process (pid ${process.ppid})`);
    expect(readFileSync(lockFile(dir), 'utf8')).toBe(`${process.ppid}\n`);
  });

  it('takes over a lock whose owner is gone, or that this process left behind', async () => {
    const dir = runtimeDir();
    await TpmLock.acquire(dir, 'x');
    const dead = await deadPid();
    writeFileSync(lockFile(dir), `${dead} iot-agent provision\n`);
    expect(await TpmLock.holder(dir)).toBeUndefined();
    await TpmLock.acquire(dir, 'iot-agent tpm info');
    expect(readFileSync(lockFile(dir), 'utf8')).toBe(`${process.pid} iot-agent tpm info\n`);
    await TpmLock.acquire(dir, 'iot-agent check');
    expect(readFileSync(lockFile(dir), 'utf8')).toBe(`${process.pid} iot-agent check\n`);
  });

  it.each(['', 'garbage', '0 daemon', '-5 daemon', '1.5 daemon'])('takes over a lock file reading %j', async (text) => {
    const dir = runtimeDir();
    await TpmLock.acquire(dir, 'x');
    writeFileSync(lockFile(dir), text);
    expect(await TpmLock.holder(dir)).toBeUndefined();
    await TpmLock.acquire(dir, 'iot-agent provision');
    expect(readFileSync(lockFile(dir), 'utf8')).toBe(`${process.pid} iot-agent provision\n`);
  });

  it('reads a holder whose owner name has spaces, around blank lines', async () => {
    const dir = runtimeDir();
    await TpmLock.acquire(dir, 'x');
    writeFileSync(lockFile(dir), `\n${process.ppid} the iot-agent daemon\n\n`);
    expect(await TpmLock.holder(dir)).toEqual({ pid: process.ppid, owner: 'the iot-agent daemon' });
  });

  it('fails with the file system\'s own error when the runtime directory cannot be made', async () => {
    const file = path.join(scratch(), 'not-a-dir');
    writeFileSync(file, '');
    await expect(TpmLock.acquire(path.join(file, 'run'), 'iot-agent provision')).rejects.toMatchObject({ code: 'ENOTDIR', name: 'Error' });
  });
});
