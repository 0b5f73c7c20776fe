import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { attestationAccess } from '../../agent/commands/attestation-access.js';
import { appendEvent, emptyLog, parseEventLogText, sha256Hex, type EventLog } from '../../agent/attestation/event-log.js';
import { recordMeasurement, type TpmSource } from '../../agent/attestation/measurement.js';
import { CommandFailure } from '../../agent/commands/command.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmUnavailableError, type TpmTransport } from '../../agent/tpm/transport.js';
import { freePort } from '../support/ports.js';

/**
 * Attestation when the TPM cannot be used: not there at all, or configured but not
 * answering (a swtpm transport to a loopback port nothing listens on). What a board does
 * then is behaviour of its own: gaps in the record, clear refusals, no crash.
 */

const NOW = new Date('2026-12-01T12:00:00.000Z');

function scratch(): string {
  return mkdtempSync(path.join(tmpdir(), 'iot-agent-attest-'));
}

/** A TPM source that opens a real transport to a TPM that does not answer, and remembers what it opened and released. */
async function silentTpm(): Promise<TpmSource & { opened: TpmTransport[]; released: TpmTransport[] }> {
  const port = await freePort();
  const opened: TpmTransport[] = [];
  const released: TpmTransport[] = [];
  return {
    opened, released,
    open: () => {
      const transport = openTransport({ kind: 'swtpm', host: '127.0.0.1', port }, { commandTimeoutMs: 2_000 });
      opened.push(transport);
      return Promise.resolve(transport);
    },
    release: async (transport) => {
      released.push(transport);
      await transport.close();
    },
  };
}

/** The source the root CLI uses when its config cannot be read: opening always fails. */
function noTpm(reason = 'the agent config cannot be used: no such file'): TpmSource {
  return { open: () => Promise.reject(new Error(reason)), release: () => Promise.resolve() };
}

function readLog(file: string): EventLog {
  return parseEventLogText(readFileSync(file, 'utf8'));
}

describe('recording a measurement without a TPM', () => {
  it('records a gap with the reason in a new log, readable by everyone', async () => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    const outcome = await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: noTpm() });
    const reason = 'TPM unavailable: the agent config cannot be used: no such file';
    expect(outcome).toEqual({ outcome: 'gap', seq: 1, reason });
    expect(readLog(logPath)).toEqual({
      format: 'iot-agent-pcr-events/1', pcr: 13, bootId: 'boot-1', tpmResetCount: null,
      events: [{ seq: 1, at: NOW.toISOString(), extended: false, reason, data: 'state' }],
    });
    expect(statSync(logPath).mode & 0o777).toBe(0o644);
  });

  it('cuts a long reason to 400 characters of the error', async () => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    const outcome = await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: noTpm('x'.repeat(1_000)) });
    expect(outcome).toMatchObject({ reason: `TPM unavailable: ${'x'.repeat(400)}` });
  });

  it('appends the gap to the log of this boot and PCR', async () => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    const earlier = appendEvent(emptyLog(13, 'boot-1', 4), { at: NOW.toISOString(), extended: true, sha256: sha256Hex('before'), data: 'before' });
    writeFileSync(logPath, JSON.stringify(earlier));
    expect(await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: noTpm() })).toMatchObject({ outcome: 'gap', seq: 2 });
    const log = readLog(logPath);
    expect(log.tpmResetCount).toBe(4);
    expect(log.events.map((e) => e.data)).toEqual(['before', 'state']);
  });

  it.each([
    ['another boot', 13, 'boot-0'],
    ['another PCR', 14, 'boot-1'],
  ])('starts a new log over one of %s', async (_what, pcr, bootId) => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    writeFileSync(logPath, JSON.stringify(appendEvent(emptyLog(pcr, bootId, 4), { at: NOW.toISOString(), extended: true, sha256: sha256Hex('old'), data: 'old' })));
    expect(await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: noTpm() })).toMatchObject({ outcome: 'gap', seq: 1 });
    expect(readLog(logPath)).toMatchObject({ pcr: 13, bootId: 'boot-1', tpmResetCount: null, events: [{ data: 'state' }] });
  });

  it('records a gap when the TPM does not answer, and releases it', async () => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    const tpm = await silentTpm();
    const outcome = await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm });
    expect(outcome).toMatchObject({ outcome: 'gap', seq: 1 });
    expect(outcome.outcome === 'gap' && outcome.reason).toMatch(/^TPM unavailable: swtpm 127\.0\.0\.1:\d+: TPM2_ReadClock failed/);
    expect(tpm.released).toEqual(tpm.opened);
    expect(tpm.opened).toHaveLength(1);
  });

  it('records the gap even when releasing the TPM fails', async () => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    const tpm = await silentTpm();
    const outcome = await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: { ...tpm, release: () => Promise.reject(new Error('busy')) } });
    expect(outcome).toMatchObject({ outcome: 'gap', seq: 1 });
    await Promise.all(tpm.opened.map((t) => t.close()));
  });

  it('keeps an unreadable log aside and notes it as a gap in the new one', async () => {
    const dir = scratch();
    const logPath = path.join(dir, 'pcr-events.json');
    writeFileSync(logPath, '{"format": "iot-agent-pcr-ev');
    await recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: noTpm() });
    const aside = `${logPath}.unreadable-${NOW.getTime()}`;
    expect(readdirSync(dir).sort()).toEqual(['pcr-events.json', path.basename(aside)]);
    expect(readFileSync(aside, 'utf8')).toBe('{"format": "iot-agent-pcr-ev');
    const { events } = readLog(logPath);
    expect(events).toEqual([
      { seq: 1, at: NOW.toISOString(), extended: false, reason: `the previous event log was unreadable (event log: not JSON); kept as ${aside}`, data: '' },
      { seq: 2, at: NOW.toISOString(), extended: false, reason: 'TPM unavailable: the agent config cannot be used: no such file', data: 'state' },
    ]);
  });

  it('fails when the log cannot be read for another reason than its absence', async () => {
    const logPath = path.join(scratch(), 'pcr-events.json');
    mkdirSync(logPath);
    await expect(recordMeasurement({ logPath, pcr: 13, data: 'state', bootId: 'boot-1', now: NOW, tpm: noTpm() })).rejects.toMatchObject({ code: 'EISDIR' });
  });
});

describe('the attestation commands without a TPM', () => {
  function access(tpm: TpmClient | undefined) {
    const changes: unknown[] = [];
    const a = attestationAccess({ tpm: () => tpm, pcr: 13, eventLogPath: path.join(scratch(), 'pcr-events.json'), onChange: (r) => changes.push(r), now: () => NOW });
    return { access: a, changes };
  }

  it('refuse with 503 while the agent has no TPM connection, telling to try again', async () => {
    const { access: a, changes } = access(undefined);
    for (const attempt of [() => a.key(), () => a.activate(Buffer.alloc(2), Buffer.alloc(2)), () => a.quote(Buffer.alloc(32), undefined)]) {
      const err = await attempt().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CommandFailure);
      expect(err).toMatchObject({ status: 503, message: 'the agent has no TPM connection right now (starting, or the TPM is unavailable); try again' });
    }
    expect(changes).toEqual([]);
  });

  it('report the hardening PCR and nothing else before any quote', async () => {
    expect(await access(undefined).access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName: null });
  });

  it('report no AK when the TPM does not answer, instead of failing', async () => {
    const client = new TpmClient(openTransport({ kind: 'swtpm', host: '127.0.0.1', port: await freePort() }, { commandTimeoutMs: 2_000 }));
    expect(await access(client).access.report()).toEqual({ pcr: 13, lastQuoteAt: null, akName: null });
    await client.close();
  });

  it('pass on the TPM\'s failure when it does not answer a quote', async () => {
    const client = new TpmClient(openTransport({ kind: 'swtpm', host: '127.0.0.1', port: await freePort() }, { commandTimeoutMs: 2_000 }));
    const { access: a, changes } = access(client);
    await expect(a.quote(Buffer.alloc(32), [13])).rejects.toBeInstanceOf(TpmUnavailableError);
    await expect(a.key()).rejects.toBeInstanceOf(TpmUnavailableError);
    expect(changes).toEqual([]);
    await client.close();
  });
});
