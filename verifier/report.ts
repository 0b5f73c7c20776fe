import type { DeviceVerdict } from './verify-device.js';

/** The verdict for a person: one line per check, then what the board has loaded since boot. */
export function formatVerdict(v: DeviceVerdict): string {
  const lines = [`${v.deviceId}: ${v.ok ? 'PASS' : 'FAIL'}${v.binding.now ? ` (attestation key ${v.binding.akName.slice(4, 16)}… bound just now)` : ''}`];
  const width = Math.max(...v.checks.map((c) => c.id.length));
  for (const check of v.checks) lines.push(`  ${check.status.padEnd(4)}  ${check.id.padEnd(width)}  ${check.message}`);
  if (v.posture) {
    const p = v.posture;
    lines.push('', p.profile === null
      ? `Measured since boot (TPM reset ${p.tpmResetCount}): no hardening profile in force, since ${p.measuredAt}`
      : `Measured since boot (TPM reset ${p.tpmResetCount}): profile ${p.profile} (${p.profileHash?.slice(0, 12)}), since ${p.measuredAt} (by ${p.measuredBy})`);
    for (const e of p.events) {
      const what = e.profile === undefined ? '(not a hardening event)' : e.profile === null ? 'no profile' : `${e.profile} (${e.profileHash?.slice(0, 12)})`;
      lines.push(`  #${e.seq} ${e.at}  ${e.measured ? `${(e.by ?? '').padEnd(5)} ${(e.op ?? '').padEnd(8)} ${what}` : `NOT MEASURED: ${e.reason ?? ''}`}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The verdict as one JSON object (--json). */
export function verdictJson(v: DeviceVerdict): Record<string, unknown> {
  return {
    deviceId: v.deviceId, ok: v.ok, checks: v.checks, posture: v.posture ?? null,
    binding: { akName: v.binding.akName, ekName: v.binding.ekName, boundAt: v.binding.boundAt, boundNow: v.binding.now },
    timings: v.timings,
  };
}
