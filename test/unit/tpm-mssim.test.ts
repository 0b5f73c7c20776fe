import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { MssimTransport } from '../../agent/tpm/mssim-transport.js';
import { unavailableWithoutEscapes, watchEscapes } from '../support/escapes.js';
import { MssimBridge, type MssimBridgeOptions } from '../support/mssim-bridge.js';
import { SwtpmInstance } from '../support/swtpm.js';

/**
 * The mssim transport to a real TPM: a private swtpm behind the simulator protocol
 * (test/support/mssim-bridge.ts), which can also hang up, vanish or split its answers.
 */

const GET_RANDOM_8 = Buffer.from('80010000000c0000017b0008', 'hex');
const RANDOM_8_HEADER = '80010000001400000000' + '0008';

let swtpm: SwtpmInstance;
beforeAll(async () => { swtpm = await SwtpmInstance.start(); });
afterAll(async () => { await swtpm?.stop(); });

const bridges: MssimBridge[] = [];
let escapes: ReturnType<typeof watchEscapes>;
beforeEach(() => { escapes = watchEscapes(); });
afterEach(async () => {
  escapes.stop();
  await Promise.all(bridges.splice(0).map((b) => b.stop()));
});

async function simulator(options: Omit<MssimBridgeOptions, 'tpm'> = {}): Promise<{ bridge: MssimBridge; transport: MssimTransport }> {
  const bridge = await MssimBridge.start({ tpm: swtpm, ...options });
  bridges.push(bridge);
  return { bridge, transport: new MssimTransport(bridge.host, bridge.port, { commandTimeoutMs: 5_000 }) };
}

const failure = (promise: Promise<unknown>) => unavailableWithoutEscapes(promise, escapes);

describe('the mssim transport to a real TPM behind the simulator protocol', () => {
  it.each([undefined, 2, 7])('sends commands on one connection and reads each answer whole (answers split after %s bytes)', async (splitAnswersAt) => {
    const { bridge, transport } = await simulator({ splitAnswersAt });
    for (let i = 0; i < 2; i++) {
      const response = await transport.transmit(GET_RANDOM_8);
      expect(response.subarray(0, 12).toString('hex')).toBe(RANDOM_8_HEADER);
    }
    expect(bridge.commandsForwarded).toBe(3); // tss.js's TPM2_Startup on connecting, then the two
    await transport.close();
    await vi.waitFor(() => expect(bridge.openConnections).toBe(0), { timeout: 2_000 });
  });

  it.each([2, 9])('fails the command whose answer breaks off after %i bytes, with no exception escaping', async (bytes) => {
    const { bridge, transport } = await simulator();
    await transport.transmit(GET_RANDOM_8);
    bridge.vanishOnNextCommand('midResponse', bytes);
    const err = await failure(transport.transmit(GET_RANDOM_8));
    expect(err.message).toBe(`mssim 127.0.0.1:${bridge.port}: TPM2_GetRandom failed`);
    expect((err.cause as Error).message).toMatch(/^simulator closed the (command|platform) connection$/);
  });

  it('fails the connect, with no exception escaping, when the simulator vanishes during the TPM2_Startup of connecting', async () => {
    const { bridge, transport } = await simulator();
    bridge.vanishOnNextCommand('before');
    const err = await failure(transport.transmit(GET_RANDOM_8));
    expect(err.message).toBe(`mssim 127.0.0.1:${bridge.port}: TPM2_GetRandom failed`);
    expect((err.cause as Error).message).toMatch(/^simulator closed the (command|platform) connection$/);
    await transport.close();
  });

  it('connects afresh for the next command when the simulator ended the session between commands', async () => {
    const { bridge, transport } = await simulator();
    await transport.transmit(GET_RANDOM_8);
    bridge.hangUp();
    await new Promise((resolve) => setTimeout(resolve, 200)); // the hang-up reaches the transport
    expect(escapes.errors).toEqual([]);
    expect((await transport.transmit(GET_RANDOM_8)).subarray(0, 12).toString('hex')).toBe(RANDOM_8_HEADER);
    expect(bridge.commandsForwarded).toBe(4); // a second TPM2_Startup: a new session
    await transport.close();
  });

  it('fails a command the simulator does not acknowledge, and goes on in a new session', async () => {
    const { bridge, transport } = await simulator();
    await transport.transmit(GET_RANDOM_8);
    bridge.ackNextAnswerWith(1);
    const err = await failure(transport.transmit(GET_RANDOM_8));
    expect(err.message).toBe(`mssim 127.0.0.1:${bridge.port}: TPM2_GetRandom failed`);
    expect((err.cause as Error).message).toMatch(/Bad ack during regular command dispatch/);
    expect((await transport.transmit(GET_RANDOM_8)).subarray(0, 12).toString('hex')).toBe(RANDOM_8_HEADER);
    await transport.close();
  });

  it('lets go of both connections when a command outlives its deadline', async () => {
    const { bridge } = await simulator();
    const transport = new MssimTransport(bridge.host, bridge.port, { commandTimeoutMs: 300 });
    await transport.transmit(GET_RANDOM_8);
    process.kill(swtpm.pid!, 'SIGSTOP');
    try {
      const err = await failure(transport.transmit(GET_RANDOM_8));
      expect(err.message).toBe(`mssim 127.0.0.1:${bridge.port}: no answer to TPM2_GetRandom within 300 ms`);
      await vi.waitFor(() => expect(bridge.openConnections).toBeLessThanOrEqual(1), { timeout: 2_000 });
    } finally {
      process.kill(swtpm.pid!, 'SIGCONT');
    }
    await transport.close();
  });
});
