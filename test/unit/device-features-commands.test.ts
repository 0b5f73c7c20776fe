import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { UNKNOWN_COMMAND_KEY } from '../../agent/daemon/device-features.js';
import { ConnectedBoard, scratchDir, stopBench, stopBoards } from '../support/connected-features.js';
import { ofType, stringContaining, stringMatching } from '../support/matchers.js';

/**
 * Commands on a board whose features are attached to a live hub session, asked for by the
 * unmodified service SDK (direct methods) and through the hub's C2D queue (envelopes).
 */
afterEach(stopBoards);
afterAll(stopBench);

/** An ISO time, as `at` carries it. */
const at = () => stringMatching(/^\d{4}-\d\d-\d\dT/);

describe('a direct method', () => {
  it('is answered, reported under its name in place of an envelope\'s earlier result, and sends no result message when quick', async () => {
    const board = await ConnectedBoard.connected();
    await board.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 45 }, id: 'before-method' });
    await expect.poll(() => board.results('before-method').length, { timeout: 10_000 }).toBe(1);
    await board.reportedWhen('lastCommands', (c) => c.setTelemetryInterval !== undefined);
    expect(await board.invoke('setTelemetryInterval', { seconds: 30 })).toEqual({ status: 200, payload: { intervalSeconds: 30, previous: 45 } });
    // A direct method has no id: the envelope's goes (a reported null removes it).
    const last = await board.reportedWhen('lastCommands', (c) => (c.setTelemetryInterval as { via?: string }).via === 'method');
    expect(last).toEqual({ setTelemetryInterval: { via: 'method', status: 200, phase: 'done', at: at(), message: '' } });
    expect(await board.reportedWhen('telemetry', (t) => t.intervalSeconds === 30)).toEqual({ intervalSeconds: 30, queued: 0, dropped: 0 });
    // A C2D result after it: the queue is delivered in order, so nothing came in between.
    await board.sendC2d({ command: 'ping', args: {}, id: 'after-method' });
    await expect.poll(() => board.results('after-method').length, { timeout: 10_000 }).toBe(1);
    expect(board.d2c('command-result')).toHaveLength(2);
  });

  it('of a name nobody registered is answered 404 and reported under unknownCommand, its message cut to 200 characters', async () => {
    const board = await ConnectedBoard.connected();
    const answer = await board.invoke('formatDisk', {});
    expect(answer).toMatchObject({ status: 404, payload: { known: board.features.registry.names() } });
    const message = (answer.payload as { message: string }).message;
    expect(message).toMatch(/^unknown command "formatDisk"; known commands: ping, /);
    expect(message.length).toBeGreaterThan(200);
    const last = await board.reportedWhen('lastCommands', (c) => c[UNKNOWN_COMMAND_KEY] !== undefined);
    expect(last).toEqual({ [UNKNOWN_COMMAND_KEY]: { via: 'method', status: 404, phase: 'done', at: at(), message: `${message.slice(0, 197)}...` } });
  });

  it('answers ping with the agent\'s version and the daemon\'s state, and getSystemInfo with the system\'s facts', async () => {
    const board = await ConnectedBoard.connected();
    expect(await board.invoke('ping')).toMatchObject({ status: 200, payload: { pong: true, agentVersion: '9.9.9', state: 'ready' } });
    expect(await board.invoke('getSystemInfo')).toMatchObject({ status: 200, payload: { os: ofType(Object) } });
  });
});

describe('a C2D envelope', () => {
  it('is run once, its result sent as a D2C message with the envelope id and reported with that id', async () => {
    const board = await ConnectedBoard.connected();
    await board.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 45 }, id: 'env-1' });
    await expect.poll(() => board.results('env-1').length, { timeout: 10_000 }).toBe(1);
    expect(board.results('env-1')[0]).toMatchObject({
      command: 'setTelemetryInterval', via: 'c2d', id: 'env-1', status: 200, phase: 'done', payload: { intervalSeconds: 45, previous: 60 },
    });
    const last = await board.reportedWhen('lastCommands', (c) => c.setTelemetryInterval !== undefined);
    expect(last.setTelemetryInterval).toEqual({ id: 'env-1', via: 'c2d', status: 200, phase: 'done', at: at(), message: '' });
    expect(board.features.executedCount()).toBe(1);
  });

  it('with an id already executed is not run again, also after a restart of the agent on the same state', async () => {
    const first = await ConnectedBoard.connected();
    await first.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 45 }, id: 'env-twice' });
    await expect.poll(() => first.results('env-twice').length, { timeout: 10_000 }).toBe(1);
    await first.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 50 }, id: 'env-twice' });
    await expect.poll(() => first.results('env-twice').length, { timeout: 10_000 }).toBe(2);
    expect(first.results('env-twice')[1]).toMatchObject({ status: 208, payload: { duplicate: true, firstStatus: 200 } });
    expect((await first.invoke('setTelemetryInterval', { seconds: 60 })).payload).toMatchObject({ previous: 45 });
    await first.stop();

    const again = await ConnectedBoard.connected({ stateDir: first.config.stateDir, deviceId: first.deviceId });
    expect(again.features.executedCount()).toBe(1);
    await again.sendC2d({ command: 'setTelemetryInterval', args: { seconds: 55 }, id: 'env-twice' });
    await expect.poll(() => again.results('env-twice').length, { timeout: 10_000 }).toBe(3);
    expect(again.results('env-twice')[2]).toMatchObject({ status: 208, payload: { duplicate: true } });
    expect(again.events('command.duplicate')).toEqual(['level=info event=command.duplicate component=commands id=env-twice command=setTelemetryInterval']);
    expect((await again.invoke('setTelemetryInterval', { seconds: 60 })).payload).toMatchObject({ previous: 60 });
  });

  it('naming a command nobody registered is answered 404 under unknownCommand, with its id', async () => {
    const board = await ConnectedBoard.connected();
    await board.sendC2d({ command: 'formatDisk', args: {}, id: 'env-unknown' });
    await expect.poll(() => board.results('env-unknown').length, { timeout: 10_000 }).toBe(1);
    expect(board.results('env-unknown')[0]).toMatchObject({ command: 'formatDisk', status: 404, via: 'c2d' });
    const last = await board.reportedWhen('lastCommands', (c) => c[UNKNOWN_COMMAND_KEY] !== undefined);
    expect(last).toEqual({ [UNKNOWN_COMMAND_KEY]: { id: 'env-unknown', via: 'c2d', status: 404, phase: 'done', at: at(), message: stringContaining('unknown command "formatDisk"') } });
  });
});

/** A hook the test lets go of: the daemon's re-provisioning, say. */
function held(): { hook: () => Promise<void>; release: () => void; calls: () => number } {
  let calls = 0;
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  return { hook: () => { calls++; return gate; }, release: () => release(), calls: () => calls };
}

describe('slow work', () => {
  it('holds the exclusive slot until its final outcome, which goes out as a D2C message however it was asked for', async () => {
    const reprovision = held();
    const board = await ConnectedBoard.connected({ hooks: { reprovision: reprovision.hook } });
    expect(await board.invoke('reprovision')).toMatchObject({ status: 202, payload: { accepted: true } });
    await expect.poll(reprovision.calls, { timeout: 10_000 }).toBe(1);
    await board.sendC2d({ command: 'restartAgent', args: {}, id: 'env-busy' });
    await expect.poll(() => board.results('env-busy').length, { timeout: 10_000 }).toBe(1);
    expect(board.results('env-busy')[0]).toMatchObject({ status: 409, payload: { running: 'reprovision' } });
    expect(board.restarts).toEqual([]);
    reprovision.release();
    const finals = () => board.d2c('command-result').map((m) => JSON.parse(m.body.toString('utf8')) as Record<string, unknown>).filter((r) => r.command === 'reprovision');
    await expect.poll(() => finals().length, { timeout: 10_000 }).toBe(1);
    expect(finals()[0]).toMatchObject({ phase: 'final', status: 200, via: 'method', payload: { message: `re-provisioned: ${board.deviceId} on ${board.hub.hostName}` } });
    const last = await board.reportedWhen('lastCommands', (c) => (c.reprovision as { phase?: string } | undefined)?.phase === 'final');
    expect(last.reprovision).toMatchObject({ via: 'method', status: 200 });
    expect((await board.invoke('restartAgent')).status).toBe(202);
    await expect.poll(() => board.restarts.length, { timeout: 5_000 }).toBe(1);
  });

  it('reports a final message of exactly 200 characters whole, and one of 201 cut with an ellipsis', async () => {
    const fill = (n: number, letter: string) => letter.repeat(n);
    let deviceId = '';
    const board = await ConnectedBoard.connected({
      hooks: { identity: () => ({ deviceId, registrationId: 'r', assignedHub: 'hub', state: 'ready', since: '2026-12-01T08:00:00.000Z' }) },
    });
    const lastMessage = async (wanted: number, letter: string) => {
      const prefix = 're-provisioned: ';
      deviceId = fill(wanted - prefix.length - ' on hub'.length, letter);
      await board.features.registry.execute('reprovision', {}, { via: 'method' }).then(({ final }) => final);
      const last = await board.reportedWhen('lastCommands', (c) => (c.reprovision as { message?: string } | undefined)?.message?.includes(deviceId.slice(0, 150)) === true);
      return (last.reprovision as { message: string }).message;
    };
    expect(await lastMessage(200, 'a')).toBe(`re-provisioned: ${deviceId} on hub`);
    const cut = await lastMessage(201, 'b');
    expect(cut).toBe(`re-provisioned: ${deviceId} on hub`.slice(0, 197) + '...');
    expect(cut).toHaveLength(200);
  });

  it('reboots with the program and after the delay the daemon was given', async () => {
    const marker = path.join(scratchDir(), 'rebooted');
    const board = await ConnectedBoard.connected({ hooks: { reboot: { argv: ['/bin/sh', '-c', `echo now > ${marker}`], delaySeconds: 1 } } });
    expect(await board.invoke('reboot')).toMatchObject({ status: 202, payload: { message: 'rebooting in 1 s', delaySeconds: 1 } });
    await expect.poll(() => existsSync(marker), { timeout: 10_000 }).toBe(true);
    expect(readFileSync(marker, 'utf8')).toBe('now\n');
    const last = await board.reportedWhen('lastCommands', (c) => (c.reboot as { phase?: string } | undefined)?.phase === 'final');
    expect(last.reboot).toMatchObject({ status: 200, message: 'reboot started' });
  });

  it('uploads a support bundle through the attached client only: a detached board refuses', async () => {
    const builds: string[] = [];
    const board = await ConnectedBoard.connected({
      hooks: { supportBundle: (_since, dir) => { builds.push(dir); return Promise.reject(new Error('no disk space for the bundle')); } },
    });
    const connected = await board.features.registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect(await connected.final).toMatchObject({ payload: { message: stringContaining('no disk space for the bundle') } });
    expect(builds).toHaveLength(1);
    board.features.detach();
    const detached = await board.features.registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect(await detached.final).toMatchObject({ status: 503, payload: { message: stringContaining('not connected to the hub') } });
    expect(builds).toHaveLength(1);
  });
});
