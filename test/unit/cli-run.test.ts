import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run } from '../../agent/cli/run.js';
import { askDaemon } from '../../agent/control/client.js';
import { controlSocketPath } from '../../agent/control/protocol.js';
import type { RuntimeOverrides } from '../../agent/runtime-overrides.js';
import { TpmLock } from '../../agent/tpm/tpm-lock.js';
import { captureOutput, type Captured } from '../support/output.js';
import { freePort } from '../support/ports.js';

/**
 * `iot-agent run` in this process, on a board whose TPM is not there (a swtpm port where
 * nothing listens): the daemon starts and serves its control socket. The process-wide
 * handlers it installs are called directly (vitest has its own for the same events) and
 * removed after each test; process.exit is recorded instead of ending the run.
 */
const EVENTS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'unhandledRejection', 'uncaughtException'] as const;
type Event = (typeof EVENTS)[number];
type Listener = (...args: unknown[]) => void;
const dirs: string[] = [];
let before = new Map<Event, Listener[]>();
const listeners = (event: Event) => (process as NodeJS.EventEmitter).listeners(event) as Listener[];
afterEach(() => {
  for (const event of EVENTS) for (const listener of added(event)) process.removeListener(event, listener);
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function added(event: Event): Listener[] {
  return listeners(event).filter((l) => !(before.get(event) ?? []).includes(l));
}

/** Calls the handlers `run` installed for `event`. */
function deliver(event: Event, ...args: unknown[]): void {
  const installed = added(event);
  expect(installed).toHaveLength(1);
  for (const listener of installed) listener(...args);
}

// The TPM is tried again after an hour: nothing happens on its own during a test.
const overrides: RuntimeOverrides = { timings: { backoff: { initialMs: 3_600_000, maxMs: 3_600_000, multiplier: 2 } } };

async function board(extra = ''): Promise<{ configPath: string; runtimeDir: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-run-'));
  dirs.push(dir);
  const configPath = path.join(dir, 'config.yaml');
  writeFileSync(configPath, [
    'provisioning:', '  idScope: 0ne0012ABCD', '  globalEndpoint: 127.0.0.1', 'tpm:', `  transport: swtpm:port=${await freePort()}`,
    `stateDir: ${path.join(dir, 'state')}`, `runtimeDir: ${path.join(dir, 'run')}`, extra,
  ].join('\n'));
  return { configPath, runtimeDir: path.join(dir, 'run') };
}

/** Starts `run` and waits until the daemon answers on its control socket. */
async function running(configPath: string, runtimeDir: string): Promise<{ done: Promise<Captured<number>> }> {
  before = new Map(EVENTS.map((e) => [e, listeners(e)]));
  const done = captureOutput(() => run({ config: configPath }, overrides));
  await expect.poll(() => added('SIGTERM').length, { timeout: 10_000 }).toBe(1);
  expect(await askDaemon(runtimeDir, { op: 'status' }, 'status')).toMatchObject({ pid: process.pid, idScope: '0ne0012ABCD' });
  return { done };
}

const events = (stderr: string) => stderr.split('\n').filter(Boolean).map((line) => /event=(\S+)/.exec(line)?.[1]);

describe('iot-agent run', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('stops cleanly on %s and exits 0', async (signal) => {
    const { configPath, runtimeDir } = await board();
    const { done } = await running(configPath, runtimeDir);
    deliver(signal);
    deliver(signal);
    const { result, stderr } = await done;
    expect(result).toBe(0);
    expect(events(stderr).filter((e) => e === 'daemon.stopping')).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`event=daemon\\.stopping signal=${signal}\\n`));
    expect(events(stderr)).toContain('daemon.stopped');
    // Stopped within the deadline: the deadline's warning never came.
    expect(events(stderr)).not.toContain('daemon.stop_timeout');
  });

  it('reads the config again on SIGHUP, and carries on', async () => {
    const { configPath, runtimeDir } = await board();
    const { done } = await running(configPath, runtimeDir);
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('0ne0012ABCD', '0ne00NEWONE'));
    deliver('SIGHUP');
    await expect.poll(async () => (await askDaemon(runtimeDir, { op: 'status' }, 'status')).idScope).toBe('0ne00NEWONE');
    deliver('SIGTERM');
    const { result, stderr } = await done;
    expect(result).toBe(0);
    expect(stderr).toContain('event=config.reloaded changed="provisioning, TPM, TLS or directories: restarting the flow"\n');
  });

  it('logs an unhandled rejection and carries on; exits 70 after an uncaught exception', async () => {
    const { configPath, runtimeDir } = await board('log:\n  level: warn');
    const exits: unknown[] = [];
    vi.spyOn(process, 'exit').mockImplementation(((code?: number) => { exits.push(code); }) as never);
    const { done } = await running(configPath, runtimeDir);
    deliver('unhandledRejection', new Error('socket hang up'));
    expect(exits).toEqual([]);
    deliver('uncaughtException', new Error('boom'));
    expect(exits).toEqual([70]);
    deliver('SIGTERM');
    const { result, stderr } = await done;
    expect(result).toBe(0);
    expect(stderr).toMatch(/ level=error event=daemon\.unhandled_rejection err="socket hang up"\n/);
    expect(stderr).toMatch(/ level=error event=daemon\.uncaught_exception err=boom action="exiting so systemd restarts a clean process"\n/);
    // log.level warn from the config: the info lines of a clean stop are left out.
    expect(events(stderr)).not.toContain('daemon.stopping');
  });

  it('exits 1 when the daemon cannot stop cleanly', async () => {
    const { configPath, runtimeDir } = await board();
    const { done } = await running(configPath, runtimeDir);
    // A directory where the TPM lock file was: releasing the lock fails.
    rmSync(path.join(runtimeDir, 'tpm.lock'));
    mkdirSync(path.join(runtimeDir, 'tpm.lock', 'x'), { recursive: true });
    deliver('SIGTERM');
    const { result, stderr } = await done;
    expect(result).toBe(1);
    expect(stderr).toMatch(/ level=error event=daemon\.stop_failed err=/);
  });

  it('stops waiting for a stop that hangs after 4.5 s, and exits with the code it was stopping with', async () => {
    const { configPath, runtimeDir } = await board();
    const { done } = await running(configPath, runtimeDir);
    // A client connected to the control socket that says nothing: closing the socket waits for it (up to 10 s).
    const idle = net.connect(controlSocketPath(runtimeDir));
    await once(idle, 'connect');
    try {
      deliver('SIGTERM');
      const { result, stderr } = await done;
      expect(result).toBe(0);
      expect(stderr).toMatch(/ level=warn event=daemon\.stop_timeout afterMs=4500\n/);
      expect(events(stderr)).not.toContain('daemon.stopped');
    } finally {
      idle.destroy();
    }
    // The stop carries on behind the deadline: the daemon lets go of the TPM once the socket has closed.
    const after = await captureOutput(() => expect.poll(() => TpmLock.holder(runtimeDir), { timeout: 15_000 }).toBeUndefined());
    expect(after.error).toBeUndefined();
  });

  it('refuses to start without an ID scope, as a config error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-run-'));
    dirs.push(dir);
    const configPath = path.join(dir, 'config.yaml');
    writeFileSync(configPath, `stateDir: ${dir}\n`);
    const { error } = await captureOutput(() => run({ config: configPath }, overrides));
    expect(error).toMatchObject({ message: `config ${configPath}: provisioning.idScope is missing: expected the ID scope of your DPS instance (Azure portal, DPS overview)`, exitCode: 2 });
  });
});
