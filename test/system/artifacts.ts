import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitForListener } from '../support/ports.js';

const run = promisify(execFile);
export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** scripts/build-deb.sh into `outdir`: the .deb's path and how long it took. */
export async function buildDeb(outdir: string): Promise<{ deb: string; ms: number }> {
  const t0 = performance.now();
  const { stdout } = await run('bash', ['scripts/build-deb.sh', outdir], { cwd: REPO, timeout: 120_000 });
  return { deb: stdout.trim().split('\n').pop()!, ms: performance.now() - t0 };
}

/** scripts/boot-test-rootfs.sh: the cached trixie tarball (debootstrapped on a first run). */
export async function rootfsTarball(): Promise<{ tarball: string; ms: number }> {
  const t0 = performance.now();
  const { stdout } = await run('bash', ['scripts/boot-test-rootfs.sh'], { cwd: REPO, timeout: 900_000, maxBuffer: 16 << 20 });
  return { tarball: stdout.trim().split('\n').pop()!, ms: performance.now() - t0 };
}

export async function extract(tarball: string, root: string): Promise<number> {
  const t0 = performance.now();
  await run('tar', ['--numeric-owner', '--xattrs', '-xf', tarball, '-C', root], { timeout: 300_000 });
  return performance.now() - t0;
}

/** swtpm bound to one address the test owns (the host end of the container's veth). */
export async function startHostSwtpm(stateDir: string, address: string, port = 2321): Promise<ChildProcess> {
  const child = spawn('swtpm', [
    'socket', '--tpm2', '--tpmstate', `dir=${stateDir}`,
    '--server', `type=tcp,port=${port},bindaddr=${address}`,
    '--ctrl', `type=tcp,port=${port + 1},bindaddr=${address}`,
    '--flags', 'not-need-init,startup-clear',
  ], { stdio: 'ignore' });
  await waitForListener(address, port);
  await waitForListener(address, port + 1);
  return child;
}
