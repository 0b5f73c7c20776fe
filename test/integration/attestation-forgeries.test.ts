import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAttestationKey, quotePcrs } from '../../agent/attestation/tpm-attestation.js';
import { hardeningEventText, parseHardeningEvent } from '../../agent/attestation/hardening-event.js';
import { sha256Hex } from '../../agent/attestation/event-log.js';
import { parseSelection } from '../../agent/attestation/pcr-selection.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { DEFAULT_STATE_DIR } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { profileHash } from '../../hardening/profile.js';
import { FileBindingStore, verifyDevice, type DeviceChannel } from '../../verifier/index.js';
import { AttestedBoard, messageOf, statuses } from '../support/attested-board.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

/**
 * What a compromised or impersonated board may answer, and what the verifier must say.
 * The board is real (agent, swtpm, hub, hardening in a namespace); a forgery is made the
 * way an attacker would: another TPM's quote, an old answer, the files root can write, an
 * agent that quotes other PCRs. Each is put between the hub and the verifier where it
 * stands for a board's answer (`forging`), or made on the board itself.
 */
describe('the verifier rejects forged posture', () => {
  let board: AttestedBoard;
  let other: SwtpmInstance;
  let otherEk: Buffer;

  /** The board's channel with some answers replaced, as a dishonest board would give them. */
  const forging = (answer: (method: string, payload: unknown, real: DeviceChannel) => Promise<{ status: number; payload: unknown }>): DeviceChannel => {
    const real = board.channel();
    return { deviceId: real.deviceId, reported: () => real.reported(), invoke: (method, payload) => answer(method, payload, real) };
  };

  beforeAll(async () => {
    [board, other] = await Promise.all([AttestedBoard.start('board-forge'), SwtpmInstance.start()]);
    const otherTpm = clientFor(other.transport);
    try {
      otherEk = (await ensureIdentity(otherTpm)).endorsementKey;
      await ensureAttestationKey(otherTpm.transport);
    } finally {
      await otherTpm.close();
    }
    const boot = await board.bootApply('baseline');
    expect(boot.code, boot.stderr).toBe(0);
    await board.startAgent();
    const honest = await board.verify();
    expect(honest.ok, JSON.stringify(honest.checks)).toBe(true);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([board?.stop(), other?.stop()]);
  });

  it('rejects a quote made by a different TPM (a second swtpm) for the right nonce', async () => {
    const channel = forging(async (method, payload, real) => {
      const answer = await real.invoke(method, payload);
      if (method !== 'attest') return answer;
      const { nonce, pcrs } = payload as { nonce: string; pcrs: string };
      const tpm = clientFor(other.transport);
      try {
        const ak = await ensureAttestationKey(tpm.transport);
        const quote = await quotePcrs(tpm.transport, Buffer.from(nonce, 'base64'), parseSelection(pcrs));
        return { status: 200, payload: {
          ...(answer.payload as object), quote: quote.attest.toString('base64'), signature: quote.signature.toString('base64'),
          pcrs: Object.fromEntries([...quote.pcrValues].map(([pcr, v]) => [String(pcr), v.toString('hex')])), akName: ak.name.toString('hex'),
        } };
      } finally {
        await tpm.close();
      }
    });
    const verdict = await board.verify({ channel });
    expect(verdict.ok).toBe(false);
    expect(statuses(verdict).signature).toBe('fail');
    expect(messageOf(verdict, 'signature')).toMatch(/not signed by the bound attestation key.*another TPM/);
  }, 60_000);

  it('rejects a replayed quote: a genuine answer to an earlier nonce', async () => {
    let recorded: { status: number; payload: unknown } | undefined;
    const channel = forging(async (method, payload, real) => {
      if (method !== 'attest') return real.invoke(method, payload);
      recorded ??= await real.invoke(method, payload);
      return recorded;
    });
    expect((await board.verify({ channel })).ok).toBe(true);
    const replayed = await board.verify({ channel });
    expect(replayed.ok).toBe(false);
    expect(statuses(replayed)).toMatchObject({ signature: 'pass', nonce: 'fail' });
    expect(messageOf(replayed, 'nonce')).toMatch(/replayed/);
  }, 60_000);

  it('rejects an event log edited after the fact (the boot event rewritten to say strict)', async () => {
    const saved = `${board.eventLogPath}.saved`;
    copyFileSync(board.eventLogPath, saved);
    try {
      const strict = (await loadProfile('strict')).profile;
      const log = board.eventLog();
      const event = parseHardeningEvent(log.events[0]!.data);
      const data = hardeningEventText({ ...event, profile: 'strict', profileHash: profileHash(strict) });
      // A careful forger keeps the log consistent with itself: the digest matches the new data.
      board.writeEventLog({ ...log, events: [{ ...log.events[0]!, data, sha256: sha256Hex(data) }, ...log.events.slice(1)] } as typeof log);
      const verdict = await board.verify();
      expect(verdict.ok).toBe(false);
      expect(statuses(verdict)['event-log']).toBe('fail');
      expect(messageOf(verdict, 'event-log')).toMatch(/does not give PCR 13's quoted value/);
      expect(verdict.posture).toBeUndefined();

      // A careless one leaves the old digest: the log contradicts itself.
      board.writeEventLog({ ...log, events: [{ ...log.events[0]!, data }, ...log.events.slice(1)] });
      expect(messageOf(await board.verify(), 'event-log')).toMatch(/altered: event 1: its sha256 is not the digest of its data/);
    } finally {
      copyFileSync(saved, board.eventLogPath);
      rmSync(saved);
    }
  }, 60_000);

  it('rejects the twin claiming strict while baseline was extended', async () => {
    // Root on the board rewrites the hardening record the agent reports from.
    const appliedFile = path.join(board.root, DEFAULT_STATE_DIR, 'applied.json');
    const original = readFileSync(appliedFile, 'utf8');
    try {
      const strict = (await loadProfile('strict')).profile;
      writeFileSync(appliedFile, JSON.stringify({ ...JSON.parse(original), profile: strict, hash: profileHash(strict) }));
      await board.stopAgent();
      await board.startAgent();
      await board.dc.waitFor('the twin to claim strict', async () => ((await board.dc.reported()).hardening as { profile?: string }).profile === 'strict', 30_000);
      const verdict = await board.verify();
      expect(verdict.ok).toBe(false);
      expect(statuses(verdict)).toMatchObject({ signature: 'pass', 'event-log': 'pass', measured: 'pass', twin: 'fail' });
      expect(messageOf(verdict, 'twin')).toMatch(/the twin claims profile strict .* but profile baseline .* was last measured/);
    } finally {
      writeFileSync(appliedFile, original);
      await board.stopAgent();
      await board.startAgent();
      await board.dc.waitFor('the twin to claim baseline again', async () => ((await board.dc.reported()).hardening as { profile?: string }).profile === 'baseline', 30_000);
    }
  }, 90_000);

  it('rejects an AK that is not bound to the enrolled EK', async () => {
    const fresh = () => new FileBindingStore(mkdtempSync(path.join(tmpdir(), 'iot-agent-bind-')), board.dc.hub.hostName);
    // The board presents another TPM's AK: its TPM cannot activate a credential made for that name.
    const otherTpm = clientFor(other.transport);
    const otherAk = await ensureAttestationKey(otherTpm.transport).finally(() => otherTpm.close());
    const channel = forging(async (method, payload, real) => method === 'attestationKey'
      ? { status: 200, payload: { akPublic: otherAk.tpm2bPublic.toString('base64'), akName: otherAk.name.toString('hex') } }
      : real.invoke(method, payload));
    await expect(board.verify({ channel, bindings: fresh() })).rejects.toThrow(/not bound to the enrolled EK/);
    // The enrolled EK is another TPM's: the board's TPM cannot activate a credential made for it.
    await expect(board.verify({ bindings: fresh(), endorsementKey: () => Promise.resolve(otherEk) })).rejects.toThrow(/not bound to the enrolled EK/);
    // Nothing was bound by either attempt; the honest binding still verifies.
    const honest = await board.verify();
    expect(honest.ok, JSON.stringify(honest.checks)).toBe(true);
  }, 60_000);

  it('rejects a quote over the wrong PCR selection (the hardening PCR left out)', async () => {
    const channel = forging(async (method, payload, real) =>
      real.invoke(method, method === 'attest' ? { ...(payload as object), pcrs: '0-7' } : payload));
    const verdict = await verifyDevice({ channel, bindings: new FileBindingStore(board.bindingsDir, board.dc.hub.hostName), hardeningPcr: 13 });
    expect(verdict.ok).toBe(false);
    expect(statuses(verdict)).toMatchObject({ signature: 'pass', nonce: 'pass', 'pcr-selection': 'fail', 'event-log': 'fail' });
    expect(messageOf(verdict, 'pcr-selection')).toBe('the quote covers PCRs 0-7, not 0-7,13');
  }, 60_000);
});
