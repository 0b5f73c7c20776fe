import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { oneLine } from '../../agent/lib/errors.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';
import { MssimBridge } from '../support/mssim-bridge.js';
import { freePortPair } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

/** How long any failure may take to surface: "no hang" made measurable. */
const PROMPT_MS = 2_000;

describe('mssim transport against a real TPM (swtpm behind the simulator protocol)', () => {
  let swtpm: SwtpmInstance;
  let bridge: MssimBridge | undefined;
  const escaped = vi.fn();

  beforeAll(async () => { swtpm = await SwtpmInstance.start(); });
  afterAll(async () => { await swtpm?.stop(); });

  // Anything thrown from a socket callback lands here instead of in a test's promise.
  beforeEach(() => {
    escaped.mockClear();
    process.on('uncaughtException', escaped);
    process.on('unhandledRejection', escaped);
  });
  afterEach(async () => {
    await bridge?.stop();
    bridge = undefined;
    process.off('uncaughtException', escaped);
    process.off('unhandledRejection', escaped);
  });

  /** Settles within PROMPT_MS and lets late socket events fire before the escape check. */
  async function failure(work: Promise<unknown>): Promise<TpmUnavailableError> {
    const started = Date.now();
    const err = await work.then(() => undefined, (e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(PROMPT_MS);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(escaped).not.toHaveBeenCalled();
    expect(err).toBeInstanceOf(TpmUnavailableError);
    return err as TpmUnavailableError;
  }

  it('reads the same EK and registration id as the swtpm transport', async () => {
    // swtpm serves one data connection at a time: read directly first, then through the bridge.
    const direct = clientFor(swtpm.transport);
    const expected = await ensureIdentity(direct).finally(() => direct.close());

    bridge = await MssimBridge.start({ tpm: swtpm });
    const viaMssim = clientFor(bridge.transport);
    const identity = await ensureIdentity(viaMssim).finally(() => viaMssim.close());

    expect(identity.created).toEqual([]);
    expect(identity.endorsementKey.equals(expected.endorsementKey)).toBe(true);
    expect(identity.storageRootKey.equals(expected.storageRootKey)).toBe(true);
    expect(identity.registrationId).toBe(expected.registrationId);
    expect(bridge.commandsForwarded).toBeGreaterThanOrEqual(4); // Startup, then EK, SRK and id key
    expect(escaped).not.toHaveBeenCalled();
  });

  it.each([2, 7])('reads the EK when answers arrive split after %i bytes', async (splitAt) => {
    const direct = clientFor(swtpm.transport);
    const expected = await ensureIdentity(direct).finally(() => direct.close());
    bridge = await MssimBridge.start({ tpm: swtpm, splitAnswersAt: splitAt });
    const viaMssim = clientFor(bridge.transport);
    const identity = await ensureIdentity(viaMssim).finally(() => viaMssim.close());
    expect(identity.endorsementKey.equals(expected.endorsementKey)).toBe(true);
    expect(escaped).not.toHaveBeenCalled();
  });

  it('names the transport when the simulator vanishes between commands', async () => {
    bridge = await MssimBridge.start({ tpm: swtpm });
    const client = clientFor(bridge.transport);
    try {
      await ensureIdentity(client);
      await bridge.vanish();
      const err = await failure(ensureIdentity(client));
      expect(err.message).toContain(`mssim 127.0.0.1:${bridge.port}`);
    } finally {
      await client.close();
    }
  });

  it('names the transport when the simulator vanishes during a command', async () => {
    bridge = await MssimBridge.start({ tpm: swtpm });
    const client = clientFor(bridge.transport);
    try {
      await ensureIdentity(client);
      bridge.vanishOnNextCommand();
      const err = await failure(ensureIdentity(client));
      expect(err.message).toContain(`mssim 127.0.0.1:${bridge.port}`);
      expect(err.message).toMatch(/ReadPublic/);
    } finally {
      await client.close();
    }
  });

  it.each([2, 4, 9])('names the transport when the simulator vanishes after %i bytes of an answer', async (bytes) => {
    bridge = await MssimBridge.start({ tpm: swtpm });
    const client = clientFor(bridge.transport);
    try {
      await ensureIdentity(client);
      bridge.vanishOnNextCommand('midResponse', bytes);
      const err = await failure(ensureIdentity(client));
      expect(err.message).toContain(`mssim 127.0.0.1:${bridge.port}`);
    } finally {
      await client.close();
    }
  });

  it('reports an unreachable simulator port clearly', async () => {
    const port = await freePortPair(); // nothing listens on it or on port + 1
    const client = clientFor(`mssim:host=127.0.0.1,port=${port}`);
    try {
      const err = await failure(ensureIdentity(client));
      expect(err.message).toContain(`mssim 127.0.0.1:${port}`);
      expect(oneLine(err)).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
      expect(err.hint).toMatch(/nothing listens there/);
    } finally {
      await client.close();
    }
  });

  it('reports a closed platform channel (port + 1) clearly', async () => {
    bridge = await MssimBridge.start({ tpm: swtpm, platform: false });
    const client = clientFor(bridge.transport);
    try {
      const err = await failure(ensureIdentity(client));
      expect(err.message).toContain(`mssim 127.0.0.1:${bridge.port}`);
      expect(oneLine(err)).toContain(`ECONNREFUSED 127.0.0.1:${bridge.port + 1}`);
    } finally {
      await client.close();
    }
  });

  it('times out on a simulator that accepts but never answers, and lets go of it', async () => {
    bridge = await MssimBridge.start({ tpm: swtpm, silent: true });
    const client = clientFor(bridge.transport, { commandTimeoutMs: 300 });
    try {
      const err = await failure(ensureIdentity(client));
      expect(err.message).toContain(`mssim 127.0.0.1:${bridge.port}: no answer to TPM2_ReadPublic within 300 ms`);
    } finally {
      await client.close();
    }
    // A timed-out connection must not linger: the next command starts on a fresh one.
    await vi.waitFor(() => expect(bridge!.openConnections).toBe(0), { timeout: 1_000 });
  });
});
