import { randomBytes } from 'node:crypto';
import { parseAttestationKey } from '../agent/attestation/attestation-key.js';
import { defaultSelection, formatSelection } from '../agent/attestation/pcr-selection.js';
import { bindAttestationKey, type Binding } from './bind.js';
import type { BindingStore } from './bindings.js';
import { messageOf, type DeviceChannel } from './channel.js';
import { verifyAttestation, type Verdict } from './checks.js';
import { VerifierError } from './errors.js';

export interface VerifyDeviceOptions {
  channel: DeviceChannel;
  bindings: BindingStore;
  /** The enrolled EK (TPM2B_PUBLIC): needed only to bind, the first time or with `rebind`. */
  endorsementKey?: () => Promise<Buffer>;
  /** Bind again even when a binding is stored (the board's AK changed). */
  rebind?: boolean;
  /** The PCR the fleet measures hardening into (attestation.pcr of the boards' config). */
  hardeningPcr: number;
  golden?: ReadonlyMap<number, Buffer>;
}

export interface DeviceVerdict extends Verdict {
  deviceId: string;
  binding: Binding & { now: boolean };
  /** Milliseconds: the attest round trip through the hub, the board's TPM within it, and the checks. */
  timings: { attestMs: number; tpmMs: number | null; verifyMs: number };
  /** The PCR values of a verified quote (for --write-golden). */
  pcrValues?: Map<number, Buffer>;
}

/**
 * One verification of one board through IoT Hub: bind its AK through the enrolled EK unless
 * a binding is stored, ask for a quote with a fresh nonce, read the twin, and judge.
 */
export async function verifyDevice(options: VerifyDeviceOptions): Promise<DeviceVerdict> {
  const { channel } = options;
  let binding = options.rebind ? undefined : await options.bindings.get(channel.deviceId);
  let boundNow = false;
  if (!binding) {
    if (!options.endorsementKey) {
      throw new VerifierError(`${channel.deviceId} has no bound attestation key yet`, { usage: true, hint: 'give the enrolled EK (--ek FILE or --dps-connection-string) to bind it' });
    }
    binding = await bindAttestationKey(channel, await options.endorsementKey());
    await options.bindings.put(binding);
    boundNow = true;
  }
  const ak = parseAttestationKey(Buffer.from(binding.akPublic, 'base64'));
  const nonce = randomBytes(32);
  const selection = defaultSelection(options.hardeningPcr);

  const t0 = performance.now();
  const answer = await channel.invoke('attest', { nonce: nonce.toString('base64'), pcrs: formatSelection(selection) });
  const attestMs = performance.now() - t0;
  const reported = await channel.reported();
  const t1 = performance.now();
  const verdict = verifyAttestation({
    ak, nonce, selection, hardeningPcr: options.hardeningPcr, reply: answer.payload, reported,
    ...(answer.status === 200 ? {} : { replyError: `attest answered ${answer.status}: ${messageOf(answer.payload)}` }),
    ...(options.golden ? { golden: options.golden } : {}),
  });
  const verifyMs = performance.now() - t1;
  const tpmMs = answer.status === 200 && typeof (answer.payload as { tpmMs?: unknown }).tpmMs === 'number' ? (answer.payload as { tpmMs: number }).tpmMs : null;
  const pcrValues = verdict.ok ? pcrValuesOf(answer.payload) : undefined;
  return { ...verdict, deviceId: channel.deviceId, binding: { ...binding, now: boundNow }, timings: { attestMs, tpmMs, verifyMs }, ...(pcrValues ? { pcrValues } : {}) };
}

function pcrValuesOf(payload: unknown): Map<number, Buffer> {
  const pcrs = (payload as { pcrs: Record<string, string> }).pcrs;
  return new Map(Object.entries(pcrs).map(([pcr, hex]) => [Number(pcr), Buffer.from(hex, 'hex')]));
}
