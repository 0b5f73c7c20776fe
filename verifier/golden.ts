import { readFile } from 'node:fs/promises';
import { BOOT_PCRS } from '../agent/attestation/pcr-selection.js';
import { writeFileAtomic } from '../agent/lib/atomic-file.js';
import { VerifierError } from './errors.js';

/**
 * Golden PCR values: what a known-good board of the fleet reads in its boot PCRs (0-7:
 * firmware, its configuration, option ROMs, boot loader, Secure Boot state). A JSON file
 * `{"sha256": {"0": "<64 hex>", ...}}`, written by `iot-agent-verify --write-golden` from a
 * verified quote of such a board. The values stand for one firmware and boot chain: a
 * firmware update changes them.
 */
export function parseGolden(text: string, source: string): Map<number, Buffer> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw goldenError(source, 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw goldenError(source, 'not a JSON object');
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== 'sha256') throw goldenError(source, 'expected exactly one key, "sha256"');
  const bank = (value as { sha256: unknown }).sha256;
  if (typeof bank !== 'object' || bank === null || Array.isArray(bank)) throw goldenError(source, 'sha256 is not an object');
  const golden = new Map<number, Buffer>();
  for (const [pcr, hex] of Object.entries(bank)) {
    if (!/^[0-7]$/.test(pcr)) throw goldenError(source, `${JSON.stringify(pcr.slice(0, 10))} is not a boot PCR (0-7)`);
    if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex)) throw goldenError(source, `PCR ${pcr} is not 64 hex digits`);
    golden.set(Number(pcr), Buffer.from(hex, 'hex'));
  }
  if (golden.size === 0) throw goldenError(source, 'no PCR values');
  return golden;
}

export async function readGolden(file: string): Promise<Map<number, Buffer>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new VerifierError(`cannot read the golden file ${file}`, { cause: err, usage: true });
  }
  return parseGolden(text, file);
}

/** Writes the boot PCRs of a verified quote as a golden file. */
export async function writeGolden(file: string, values: ReadonlyMap<number, Buffer>): Promise<void> {
  const sha256 = Object.fromEntries(BOOT_PCRS.filter((pcr) => values.has(pcr)).map((pcr) => [String(pcr), values.get(pcr)!.toString('hex')]));
  await writeFileAtomic(file, `${JSON.stringify({ sha256 }, null, 2)}\n`, 0o644);
}

function goldenError(source: string, reason: string): VerifierError {
  return new VerifierError(`golden file ${source}: ${reason}`, { usage: true, hint: '{"sha256": {"0": "<64 hex digits>", …, "7": "…"}}, as --write-golden makes it' });
}
