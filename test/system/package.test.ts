import { execFile, execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeTimeEnv } from '../support/fake-time.js';
import { stringMatching } from '../support/matchers.js';
import { buildDeb } from './artifacts.js';

const run = promisify(execFile);

/** The .deb as scripts/build-deb.sh makes it, inspected with dpkg-deb (the boot test installs it). */
describe('the Debian package', () => {
  let work: string;
  let tree: string;
  let deb: string;
  let files: string[];
  let control: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'iot-agent-deb-'));
    tree = path.join(work, 'tree');
    ({ deb } = await buildDeb(work));
    files = (await run('dpkg-deb', ['-c', deb])).stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(5).join(' ').replace(/^\.\//, '/'));
    control = (await run('dpkg-deb', ['-f', deb])).stdout;
    execFileSync('dpkg-deb', ['-R', deb, tree]);
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('is named iot-agent_<version>_all.deb and depends on the distribution\'s nodejs (>= 20)', () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(path.basename(deb)).toBe(`iot-agent_${version}_all.deb`);
    expect(control).toMatch(/^Architecture: all$/m);
    expect(control).toMatch(/^Depends: .*\bnodejs \(>= 20\)/m);
    expect(control).toMatch(/^Depends: .*\btpm-udev\b/m);
  });

  it('holds the bundled agent, the units, sysusers, tmpfiles, polkit rule, default config and profiles, and no node_modules', () => {
    for (const file of [
      '/usr/bin/iot-agent', '/usr/lib/iot-agent/dist/agent/cli.js', '/usr/lib/iot-agent/package.json',
      '/usr/lib/systemd/system/iot-agent.service', '/usr/lib/systemd/system/iot-agent-hardening.service',
      '/usr/lib/systemd/system/iot-agent-harden-apply@.service', '/usr/lib/systemd/system/iot-agent.service.d/restart-backoff.conf',
      '/usr/lib/sysusers.d/iot-agent.conf', '/usr/lib/tmpfiles.d/iot-agent.conf', '/usr/share/polkit-1/rules.d/50-iot-agent.rules',
      '/etc/iot-agent/config.yaml', '/usr/share/iot-agent/profiles/baseline.yaml', '/usr/share/iot-agent/profiles/strict.yaml',
      // helper programs the agent runs in short-lived processes, and packages loaded on use
      '/usr/lib/iot-agent/dist/agent/provisioning/child-main.js', '/usr/lib/iot-agent/dist/agent/telemetry/system-info-main.js',
      '/usr/lib/iot-agent/dist/agent/lazy/yaml.cjs', '/usr/lib/iot-agent/dist/agent/lazy/azure-storage-blob.cjs',
    ]) expect(files, file).toContain(file);
    expect(files.filter((f) => f.includes('node_modules'))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') || f.endsWith('.map'))).toEqual([]);
  });

  it('marks the config as a conffile and ships maintainer scripts that are valid sh', async () => {
    expect(readFileSync(path.join(tree, 'DEBIAN/conffiles'), 'utf8').trim().split('\n')).toEqual(['/etc/iot-agent/config.yaml']);
    for (const script of ['postinst', 'prerm', 'postrm']) {
      await run('sh', ['-n', path.join(tree, 'DEBIAN', script)]);
    }
  });

  it('installs in 15 MB or less', () => {
    const kb = Number(/^Installed-Size: (\d+)$/m.exec(control)![1]);
    expect(kb).toBeLessThanOrEqual(15 * 1024);
  });

  it('keeps `iot-agent --help` lazy: the bundled CLI answers without loading the commands', async () => {
    const cli = path.join(tree, 'usr/lib/iot-agent/dist/agent/cli.js');
    const t0 = performance.now();
    const { stdout } = await run(process.execPath, ['--trace-warnings', cli, '--help'], { cwd: '/' });
    const ms = performance.now() - t0;
    expect(stdout).toContain('Usage: iot-agent');
    // The Azure SDK chunk alone takes longer than this to load on the CI machine.
    expect(ms).toBeLessThan(1_000);
    const big = readFileSync(cli, 'utf8');
    expect(big.length).toBeLessThan(200_000);
  });

  it('names the errors its provisioning helper hands back by their classes, though the bundle minifies class names', async () => {
    const helper = fork(path.join(tree, 'usr/lib/iot-agent/dist/agent/provisioning/child-main.js'), [], { cwd: '/', stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    const answer = new Promise<unknown>((resolve) => helper.once('message', resolve));
    const exited = new Promise<number | null>((resolve) => helper.once('exit', resolve));
    helper.send({ transport: 'swtpm:host=127.0.0.1,port=2321', registrationId: 'x', idScope: '0ne1', globalEndpoint: 'dps', shell: 'sh -c reboot' });
    expect(await answer).toMatchObject({
      kind: 'failed',
      error: { $error: 'ChildMessageError', stack: stringMatching(/^ChildMessageError: unknown field "shell"/), fields: { name: 'ChildMessageError' } },
    });
    expect(await exited).toBe(1);
  });

  it('holds the clock to the build\'s time: check fails a clock a day before the commit it was built from', async () => {
    const built = Number(process.env.SOURCE_DATE_EPOCH ?? execFileSync('git', ['log', '-1', '--format=%ct'], { encoding: 'utf8' }).trim()) * 1000;
    // Everything on loopback, where nothing listens: the clock check needs no answer.
    const config = path.join(work, 'clock-config.yaml');
    writeFileSync(config, ['provisioning:', '  idScope: 0ne00000001', '  globalEndpoint: 127.0.0.1', 'tpm:', '  transport: swtpm:host=127.0.0.1,port=9',
      `stateDir: ${path.join(work, 'clock-state')}`, ''].join('\n'));
    const checkAt = async (offset: string) => {
      const cli = path.join(tree, 'usr/lib/iot-agent/dist/agent/cli.js');
      const out = await run(process.execPath, [cli, '--config', config, 'check', '--json'], { cwd: '/', env: { ...process.env, IOT_AGENT_TPM: '', ...fakeTimeEnv(offset) } })
        .catch((err: { stdout: string }) => err);
      return (JSON.parse(out.stdout) as { checks: { id: string; status: string; message: string }[] }).checks.find((c) => c.id === 'clock');
    };
    const dayBefore = `-${Math.ceil((Date.now() - built) / 1000) + 86_400}s`;
    expect(await checkAt(dayBefore)).toMatchObject({ status: 'fail', message: stringMatching(/older than this agent/) });
    expect(await checkAt('+0s')).toMatchObject({ status: 'pass' });
  }, 60_000);

  it('answers --version from the bundle itself: the package.json beside it carries no version', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(JSON.parse(readFileSync(path.join(tree, 'usr/lib/iot-agent/package.json'), 'utf8'))).not.toHaveProperty('version');
    const { stdout } = await run(process.execPath, [path.join(tree, 'usr/lib/iot-agent/dist/agent/cli.js'), '--version'], { cwd: '/' });
    expect(stdout.trim()).toBe(version);
  });
});
