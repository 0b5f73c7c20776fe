import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliMeasure } from '../../agent/cli/harden-measure.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { freePort } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { stringContaining, stringMatching } from '../support/matchers.js';

/** A hardening engine on a test tree with nothing applied yet, its records directory made. */
function engine(): HardeningEngine {
  const made = new HardeningEngine({ root: mkdtempSync(path.join(tmpdir(), 'iot-agent-measure-root-')), backend: 'auto' });
  mkdirSync(made.records.dir, { recursive: true });
  return made;
}

function configFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-measure-config-')), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('the root CLI\'s hardening measurement', () => {
  it('records a gap, never a failure, when the agent config cannot be used, into the default PCR', async () => {
    const warnings: string[] = [];
    const measure = await cliMeasure({ configPath: '/nonexistent/config.yaml', tpm: undefined, by: 'cli', warn: (m) => warnings.push(m) });
    expect(measure.last()).toBeUndefined();
    const outcome = await measure.afterChange(engine(), { operation: 'apply', changed: true });
    expect(outcome).toMatchObject({ outcome: 'gap', reason: stringMatching(/^TPM unavailable: the agent config cannot be used: config \/nonexistent\/config.yaml: cannot be read/) });
    expect(measure.last()).toMatchObject({ outcome: 'gap', pcr: 13 });
    expect(warnings).toEqual([expect.stringMatching(/^hardening not measured into PCR 13: TPM unavailable: the agent config cannot be used/)]);
  });

  it('measures into the configured PCR and TPM, or the TPM given with --tpm', async () => {
    const port = await freePort();
    const configPath = configFile(`attestation:\n  pcr: 15\ntpm:\n  transport: swtpm:port=${port}\n`);
    const measure = await cliMeasure({ configPath, tpm: undefined, by: 'boot', warn: () => undefined });
    expect(await measure.afterChange(engine(), { operation: 'apply', changed: true })).toMatchObject({ outcome: 'gap', reason: stringMatching(/^TPM unavailable: /) });
    expect(measure.last()).toMatchObject({ pcr: 15 });
    const other = await cliMeasure({ configPath, tpm: 'tpm0', by: 'cli', warn: () => undefined });
    expect(await other.afterChange(engine(), { operation: 'rollback', changed: true })).toMatchObject({
      outcome: 'gap', reason: stringContaining('the agent config cannot be used: invalid TPM transport "tpm0"'),
    });
    expect(other.last()).toMatchObject({ pcr: 15 });
  });

  it('extends the PCR of a TPM that answers, opening it for each measurement and closing it after', async () => {
    const tpm = await SwtpmInstance.start();
    try {
      const configPath = configFile(`attestation:\n  pcr: 15\ntpm:\n  transport: ${tpm.transport}\n`);
      const warnings: string[] = [];
      const measure = await cliMeasure({ configPath, tpm: undefined, by: 'cli', warn: (m) => warnings.push(m) });
      const board = engine();
      expect(await measure.afterChange(board, { operation: 'apply', changed: true })).toEqual({ outcome: 'extended', seq: 1 });
      expect(measure.last()).toEqual({ outcome: 'extended', seq: 1, pcr: 15 });
      // swtpm serves one connection at a time: the second measurement needs the first one's closed.
      expect(await measure.afterChange(board, { operation: 'rollback', changed: true })).toEqual({ outcome: 'extended', seq: 2 });
      expect(warnings).toEqual([]);
    } finally {
      await tpm.stop();
    }
  }, 60_000);

  it('keeps what the last measurement said when one could not be recorded at all', async () => {
    const warnings: string[] = [];
    const measure = await cliMeasure({ configPath: '/nonexistent/config.yaml', tpm: undefined, by: 'cli', warn: (m) => warnings.push(m) });
    // No records directory: not even the gap can be written.
    const bare = new HardeningEngine({ root: mkdtempSync(path.join(tmpdir(), 'iot-agent-measure-root-')), backend: 'auto' });
    expect(await measure.afterChange(bare, { operation: 'apply', changed: true })).toBeUndefined();
    expect(measure.last()).toBeUndefined();
    expect(warnings).toEqual([stringMatching(/^hardening measurement not recorded: /)]);
  });
});
