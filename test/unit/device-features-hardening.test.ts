import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FeatureHooks } from '../../agent/daemon/device-features.js';
import { EVENT_LOG_FILE } from '../../agent/attestation/hardening-measure.js';
import { DEFAULT_STATE_DIR, Records } from '../../hardening/records.js';
import { benchTpm, ConnectedBoard, scratchDir, stopBench, stopBoards } from '../support/connected-features.js';
import { objectContaining, stringMatching } from '../support/matchers.js';
import { NetnsPair, requireHardeningTools } from '../support/netns.js';

/**
 * Hardening profiles applied for real by a connected board's features: in a network
 * namespace pair of the test's own (never this machine's firewall), on a scratch root, with
 * the confirm step reaching a TLS stand-in for the hub on the peer side, and the change
 * measured into the board's swtpm through the features' TPM connection.
 */
const pairs: NetnsPair[] = [];
afterEach(async () => {
  await stopBoards();
  for (const pair of pairs.splice(0)) await pair.destroy();
});
afterAll(stopBench);

/** Hooks for a board whose hardening site is a fresh namespace pair and scratch root. */
async function hardenedSite(): Promise<{ hooks: Partial<FeatureHooks>; root: string }> {
  requireHardeningTools(['ip', 'iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl']);
  const pair = await NetnsPair.create();
  pairs.push(pair);
  const root = scratchDir();
  mkdirSync(path.join(root, 'sys/bus/usb/devices/usb1'), { recursive: true });
  writeFileSync(path.join(root, 'sys/bus/usb/devices/usb1/authorized_default'), '1\n');
  mkdirSync(path.join(root, DEFAULT_STATE_DIR), { recursive: true });
  await pair.serveTls(path.join(root, 'tls'), 8883);
  const endpoints = () => [{ host: pair.peerAddress, port: 8883 }];
  return { root, hooks: { hardeningSite: { root, netns: pair.device, backend: 'nft' }, endpoints } };
}

describe('a desired hardening profile applied for real', () => {
  it('is applied, confirmed and measured; after a restart it is seen as applied and not run again', async () => {
    const { hooks, root } = await hardenedSite();
    const board = await ConnectedBoard.connected({ hooks });
    await board.setDesired({ hardeningProfile: 'baseline' });
    const done = await board.reportedWhen('hardeningProfile', (a) => a.ac !== 202 && a.av === 2);
    expect(done).toMatchObject({ value: 'baseline', ac: 200 });
    expect(await board.reportedWhen('hardening', (h) => h.profile === 'baseline')).toMatchObject({ confirmed: true, drift: 0, driftCheckedBy: 'agent' });
    expect(done.ad).toBe('profile baseline applied and confirmed');
    const log = JSON.parse(readFileSync(path.join(root, DEFAULT_STATE_DIR, EVENT_LOG_FILE), 'utf8')) as { pcr: number; events: { data: string; extended: boolean }[] };
    expect(log.pcr).toBe(board.config.attestation.pcr);
    expect(log.events.map((e) => ({ ...(JSON.parse(e.data) as object), extended: e.extended })))
      .toEqual([objectContaining({ op: 'apply', by: 'agent', agentVersion: '9.9.9', profile: 'baseline', extended: true })]);
    expect(board.events('hardening.measure_failed')).toEqual([]);
    expect(await board.invoke('getHardeningStatus')).toMatchObject({ status: 200, payload: { profile: 'baseline', confirmed: true, drift: 0, drifted: [] } });

    // The agent starts again: it sees the desired profile again, already applied.
    await board.stop();
    const again = await ConnectedBoard.connected({ hooks, stateDir: board.config.stateDir, deviceId: board.deviceId });
    const ack = await again.reportedWhen('hardeningProfile', (a) => a.ad === 'profile baseline already applied');
    expect(ack).toEqual({ value: 'baseline', ac: 200, av: 2, ad: 'profile baseline already applied' });
    expect(again.events('command.result')).toEqual([]);
  });

  it('is applied again while the applied one is unconfirmed, or another profile', async () => {
    const { hooks, root } = await hardenedSite();
    const board = await ConnectedBoard.connected({ hooks });
    const { final } = await board.features.registry.execute('applyHardening', { profile: 'baseline' }, { via: 'method' });
    expect(await final).toMatchObject({ status: 200 });
    const records = new Records(path.join(root, DEFAULT_STATE_DIR));
    await records.applied.write({ ...(await records.applied.read())!, confirmed: false });
    await board.setDesired({ hardeningProfile: 'baseline' });
    expect(await board.reportedWhen('hardeningProfile', (a) => a.ac !== 202 && a.av === 2)).toMatchObject({ ac: 200, ad: stringMatching(/^profile baseline applied/) });
    await board.setDesired({ hardeningProfile: 'strict' });
    expect(await board.reportedWhen('hardeningProfile', (a) => a.ac !== 202 && a.av === 3)).toMatchObject({ ad: stringMatching(/^profile strict (applied|was rolled back)/) });
  });

  it('says in the log that a change could not be measured while the agent has no TPM connection, and applies it anyway', async () => {
    const { hooks } = await hardenedSite();
    const board = await ConnectedBoard.connected({ hooks: { ...hooks, tpm: () => undefined } });
    const { final } = await board.features.registry.execute('applyHardening', { profile: 'baseline' }, { via: 'method' });
    expect(await final).toMatchObject({ status: 200 });
    expect(board.events('hardening.measure_failed')).toContainEqual(expect.stringContaining('the agent has no TPM connection yet') as unknown);
  });

  it('hands attest the event log the measurement wrote', async () => {
    const { hooks, root } = await hardenedSite();
    await benchTpm();
    const board = await ConnectedBoard.connected({ hooks });
    const { final } = await board.features.registry.execute('applyHardening', { profile: 'baseline' }, { via: 'method' });
    expect(await final).toMatchObject({ status: 200 });
    expect((await board.invoke('attestationKey')).status).toBe(200);
    const { status, payload } = await board.invoke('attest', { nonce: Buffer.alloc(20, 7).toString('base64') });
    expect(status).toBe(200);
    const written = JSON.parse(readFileSync(path.join(root, DEFAULT_STATE_DIR, EVENT_LOG_FILE), 'utf8')) as unknown;
    expect((payload as { eventLog: unknown }).eventLog).toEqual(written);
    expect(await board.reportedWhen('attestation', (a) => typeof a.lastQuoteAt === 'string')).toMatchObject({ pcr: board.config.attestation.pcr });
  });
});
