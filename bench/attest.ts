import { randomBytes, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { uptime } from 'node:os';
import { parseAttestationKey } from '../agent/attestation/attestation-key.js';
import { defaultSelection, formatSelection } from '../agent/attestation/pcr-selection.js';
import { verifyAttestation, type VerifyInput } from '../verifier/checks.js';
import { FileBindingStore } from '../verifier/bindings.js';
import { AttestedBoard } from '../test/support/attested-board.js';
import { median, percentiles as stats } from './stats.js';

/**
 * `npm run bench -- attest`: proving a board's posture, on the local cloud with a real agent,
 * swtpm and hardening applied in a namespace of the bench's own.
 * 1. Quote + verify round trip (iot-agent-verify's work for one board: `attest` through the
 *    hub, the twin read, the checks), median and p99, with the board's TPM share (quote and
 *    PCR reads, as the agent timed them) apart; against `ping` through the same hub, interleaved.
 * 2. Verifier throughput on one core: recorded genuine answers checked again and again
 *    (what an operator checking a fleet pays per board), against bare ECDSA verifications.
 */
const WARM_UP = 20;
const ROUNDS = 300;
const REPLIES = 64;
const THROUGHPUT_MS = 3_000;

export async function run(): Promise<void> {
  const board = await AttestedBoard.start('bench-attest');
  try {
    // As in production: log level info (the test config's debug writes a line per call).
    writeFileSync(board.dc.files.configPath, readFileSync(board.dc.files.configPath, 'utf8').replace('level: debug', 'level: info'));
    const boot = await board.bootApply('baseline');
    if (boot.code !== 0) throw new Error(`boot apply failed: ${boot.stderr}`);
    await board.startAgent();
    const bound = await board.verify();
    if (!bound.ok) throw new Error(`the board does not verify: ${JSON.stringify(bound.checks)}`);

    const ping = async () => {
      const t0 = performance.now();
      const answer = await board.dc.invoke('ping');
      if (answer.status !== 200) throw new Error(`ping answered ${answer.status}`);
      return performance.now() - t0;
    };
    const once = async () => {
      const t0 = performance.now();
      const verdict = await board.verify();
      const total = performance.now() - t0;
      if (!verdict.ok) throw new Error(`verification failed: ${JSON.stringify(verdict.checks)}`);
      return { total, ...verdict.timings };
    };
    for (let i = 0; i < WARM_UP; i++) { await ping(); await once(); }
    const pings: number[] = [];
    const rounds: Awaited<ReturnType<typeof once>>[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      pings.push(await ping());
      rounds.push(await once());
    }

    const inputs = await recordedAnswers(board);
    const checks = perSecond(() => {
      for (const input of inputs) if (!verifyAttestation(input).ok) throw new Error('a recorded answer no longer verifies');
      return inputs.length;
    });
    const ecdsa = perSecond(() => {
      for (const input of inputs) {
        const reply = input.reply as { quote: string; signature: string };
        const sig = Buffer.from(reply.signature, 'base64');
        const r = sig.subarray(6, 6 + sig.readUInt16BE(4));
        const s = sig.subarray(8 + r.length);
        verify('sha256', Buffer.from(reply.quote, 'base64'), { key: input.ak.key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([pad(r), pad(s)]));
      }
      return inputs.length;
    });

    const totals = rounds.map((r) => r.total);
    const tpm = rounds.map((r) => r.tpmMs ?? NaN);
    const hub = rounds.map((r) => r.attestMs - (r.tpmMs ?? 0));
    const twin = rounds.map((r) => r.total - r.attestMs - r.verifyMs);
    const local = rounds.map((r) => r.verifyMs);
    const [p, t] = [stats(pings), stats(totals)];
    line(`load: ${loadAverage()}`);
    line(`quote + verify round trip (${ROUNDS} boards' worth, interleaved with ping)`);
    line(`  total                          p50 ${ms(t.p50)}  p99 ${ms(t.p99)}`);
    line(`    board's TPM (quote, PCRs)    p50 ${ms(stats(tpm).p50)}  p99 ${ms(stats(tpm).p99)}  (${pct(median(tpm) / t.p50)} of the median total)`);
    line(`    attest through hub + agent   p50 ${ms(stats(hub).p50)}  p99 ${ms(stats(hub).p99)}`);
    line(`    twin read                    p50 ${ms(stats(twin).p50)}  p99 ${ms(stats(twin).p99)}`);
    line(`    checks                       p50 ${ms(stats(local).p50)}  p99 ${ms(stats(local).p99)}`);
    line(`  ping through the same hub      p50 ${ms(p.p50)}  p99 ${ms(p.p99)}`);
    line(`  ratio total / ping             p50 ${(t.p50 / p.p50).toFixed(2)}x  p99 ${(t.p99 / p.p99).toFixed(2)}x`);
    line(`verifier throughput, one core (${inputs.length} recorded answers, each with its event log and twin)`);
    line(`  verifyAttestation              ${Math.round(checks)} quotes/s`);
    line(`  bare ECDSA P-256 verify        ${Math.round(ecdsa)} /s`);
    line(`  ratio                          ${(checks / ecdsa).toFixed(2)} of the bare signature check`);
    process.stdout.write(`${JSON.stringify({
      bench: 'attest', load: loadAverage(), roundTripMs: { p50: round(t.p50), p99: round(t.p99) }, tpmMs: { p50: round(stats(tpm).p50), p99: round(stats(tpm).p99) },
      pingMs: { p50: round(p.p50), p99: round(p.p99) }, verifierQuotesPerSecond: Math.round(checks), ecdsaPerSecond: Math.round(ecdsa),
    })}\n`);
  } finally {
    await board.stop();
  }
}

/** Genuine answers to fresh nonces, with what the verifier needs to judge each again. */
async function recordedAnswers(board: AttestedBoard): Promise<VerifyInput[]> {
  const binding = await new FileBindingStore(board.bindingsDir, board.dc.hub.hostName).get(board.dc.deviceId);
  if (!binding) throw new Error('not bound');
  const ak = parseAttestationKey(Buffer.from(binding.akPublic, 'base64'));
  const channel = board.channel();
  const reported = await channel.reported();
  const selection = defaultSelection(13);
  const inputs: VerifyInput[] = [];
  for (let i = 0; i < REPLIES; i++) {
    const nonce = randomBytes(32);
    const answer = await channel.invoke('attest', { nonce: nonce.toString('base64'), pcrs: formatSelection(selection) });
    inputs.push({ ak, nonce, selection, hardeningPcr: 13, reply: answer.payload, reported });
  }
  return inputs;
}

/** Work units per second, over THROUGHPUT_MS of repeated rounds on this thread. */
function perSecond(round: () => number): number {
  round(); // warm-up
  let done = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < THROUGHPUT_MS) done += round();
  return done / ((performance.now() - t0) / 1000);
}

function pad(value: Buffer): Buffer {
  return value.length >= 32 ? value : Buffer.concat([Buffer.alloc(32 - value.length), value]);
}

function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') + ` (up ${Math.round(uptime() / 60)} min)`;
  } catch {
    return 'unknown';
  }
}

const round = (v: number) => Math.round(v * 100) / 100;
const ms = (v: number) => `${v.toFixed(2)} ms`;
const pct = (v: number) => `${Math.round(v * 100)} %`;
const line = (text: string) => process.stdout.write(`${text}\n`);
