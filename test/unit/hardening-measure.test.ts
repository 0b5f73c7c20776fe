import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hardeningEventText, parseHardeningEvent } from '../../agent/attestation/hardening-event.js';
import { MAX_EVENT_DATA_BYTES } from '../../agent/attestation/event-log.js';
import type { TpmSource } from '../../agent/attestation/measurement.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { EVENT_LOG_FILE, hardeningEvent, PcrMeasure } from '../../agent/attestation/hardening-measure.js';
import type { EngineView } from '../../hardening/measure.js';
import { buildPlan, planJson, type Plan } from '../../hardening/plan.js';

const usb = (controllers: string[]) => ({ controllers, networkDevices: [] });
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function strictPlan(controllers = ['usb1']): Promise<Plan> {
  const { profile, origin } = await loadProfile('strict');
  return buildPlan(profile, origin, usb(controllers), null);
}

describe('what a hardening measurement says', () => {
  it('names the profile and hashes each loaded part the way `harden plan --json` shows it', async () => {
    const plan = await strictPlan();
    const json = planJson(plan, '/');
    const event = hardeningEvent(plan, 'apply', 'boot', '1.2.3');
    expect(event).toMatchObject({ op: 'apply', by: 'boot', profile: 'strict', profileHash: plan.hash, agentVersion: '1.2.3' });
    expect(event.parts!.iptables).toBe(sha256(json.iptablesRestore as string));
    expect(event.parts!.ip6tables).toBeNull();
    const text = hardeningEventText(event);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_EVENT_DATA_BYTES);
    expect(parseHardeningEvent(text)).toMatchObject(event);
  });

  it('hashes the IPv6 rules too when the profile has some', async () => {
    const { profile, origin } = await loadProfile('baseline');
    const plan = buildPlan(profile, origin, usb([]), null);
    expect(hardeningEvent(plan, 'apply', 'cli', '1').parts!.ip6tables).toBe(sha256(planJson(plan, '/').ip6tablesRestore as string));
  });

  it('differs between profiles in every part they render differently, and by the board\'s USB controllers only in sysfs', async () => {
    const baseline = await loadProfile('baseline');
    const a = hardeningEvent(buildPlan(baseline.profile, baseline.origin, usb(['usb1']), null), 'apply', 'cli', '1');
    const b = hardeningEvent(await strictPlan(), 'apply', 'cli', '1');
    expect(a.profileHash).not.toBe(b.profileHash);
    for (const part of ['iptables', 'sysctls', 'files', 'sysfs'] as const) expect(a.parts![part], part).not.toBe(b.parts![part]);
    const twoControllers = hardeningEvent(await strictPlan(['usb1', 'usb2']), 'apply', 'cli', '1');
    expect({ ...twoControllers.parts, sysfs: null }).toEqual({ ...b.parts, sysfs: null });
    expect(twoControllers.parts!.sysfs).not.toBe(b.parts!.sysfs);
  });

  it('hashes the sysctls whatever order they were set in, and notices a changed value, file or removal', async () => {
    const plan = await strictPlan();
    const parts = hardeningEvent(plan, 'apply', 'cli', '1').parts!;
    const reordered = { ...plan, host: { ...plan.host, sysctls: Object.fromEntries(Object.entries(plan.host.sysctls).reverse()) } };
    expect(hardeningEvent(reordered, 'apply', 'cli', '1').parts!.sysctls).toBe(parts.sysctls);
    const changed = { ...plan, host: { ...plan.host, sysctls: { ...plan.host.sysctls, 'net.ipv4.tcp_syncookies': '0' } } };
    expect(hardeningEvent(changed, 'apply', 'cli', '1').parts!.sysctls).not.toBe(parts.sysctls);
    const edited = { ...plan, host: { ...plan.host, files: plan.host.files.map((f, i) => (i === 0 ? { ...f, content: `${f.content}#\n` } : f)) } };
    expect(hardeningEvent(edited, 'apply', 'cli', '1').parts!.files).not.toBe(parts.files);
    const kept = { ...plan, host: { ...plan.host, removeFiles: [] } };
    expect(hardeningEvent(kept, 'apply', 'cli', '1').parts!.files).not.toBe(parts.files);
    const sysfs = { ...plan, host: { ...plan.host, sysfs: plan.host.sysfs.map((s) => ({ ...s, value: '1' })) } };
    expect(hardeningEvent(sysfs, 'apply', 'cli', '1').parts!.sysfs).not.toBe(parts.sysfs);
  });

  it('says "no profile" when none is in force', () => {
    expect(hardeningEvent(null, 'rollback', 'cli', '1')).toEqual({ op: 'rollback', by: 'cli', profile: null, profileHash: null, parts: null, agentVersion: '1' });
  });
});

describe('measuring after a change on a board without a usable TPM', () => {
  const noTpm: TpmSource = { open: () => Promise.reject(new Error('no TPM device')), release: () => Promise.resolve() };

  /** The engine as the measurement sees it: the applied profile (if any), its plan, and the records' directory. */
  async function engineView(applied: boolean): Promise<EngineView & { dir: string }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-measure-'));
    dirs.push(dir);
    const { profile, origin } = await loadProfile('strict');
    return {
      dir,
      records: { dir },
      applied: () => Promise.resolve(applied ? { profile, origin, hash: 'h' } : null),
      plan: (loaded) => Promise.resolve(buildPlan(loaded.profile, loaded.origin, usb(['usb1']), null)),
    };
  }

  it('records a gap with the reason and the event in force, and warns, without failing the hardening', async () => {
    const engine = await engineView(true);
    const warnings: string[] = [];
    const measure = new PcrMeasure({
      pcr: 23, by: 'guard', tpm: noTpm, agentVersion: '9.9.9', warn: (m) => warnings.push(m),
      bootId: () => Promise.resolve('boot-1'), now: () => new Date('2024-05-01T00:00:00Z'),
    });
    const outcome = await measure.afterChange(engine, { operation: 'apply', changed: true });
    expect(outcome).toMatchObject({ outcome: 'gap', reason: 'TPM unavailable: no TPM device' });
    expect(warnings).toEqual(['hardening not measured into PCR 23: TPM unavailable: no TPM device']);
    expect(EVENT_LOG_FILE).toBe('pcr-events.json');
    const log = JSON.parse(readFileSync(path.join(engine.dir, EVENT_LOG_FILE), 'utf8')) as { pcr: number; bootId: string; events: { at: string; extended: boolean; data: string }[] };
    expect(log).toMatchObject({ pcr: 23, bootId: 'boot-1' });
    expect(log.events).toHaveLength(1);
    expect(log.events[0]).toMatchObject({ at: '2024-05-01T00:00:00.000Z', extended: false });
    expect(parseHardeningEvent(log.events[0]!.data)).toEqual({
      ...hardeningEvent(await engine.plan({ profile: (await loadProfile('strict')).profile, origin: 'builtin:strict' }), 'apply', 'guard', '9.9.9'),
      type: 'iot-agent/hardening',
    });
  });

  it('records that no profile is in force after rolling back the only one, in this boot and at this time by default', async () => {
    const engine = await engineView(false);
    const before = Date.now();
    await new PcrMeasure({ pcr: 16, by: 'cli', tpm: noTpm, agentVersion: '1', warn: () => undefined }).afterChange(engine, { operation: 'rollback', changed: true });
    const log = JSON.parse(readFileSync(path.join(engine.dir, EVENT_LOG_FILE), 'utf8')) as { bootId: string; events: { at: string; data: string }[] };
    expect(log.bootId).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(Date.parse(log.events[0]!.at)).toBeGreaterThanOrEqual(before - 1);
    expect(parseHardeningEvent(log.events[0]!.data)).toMatchObject({ op: 'rollback', by: 'cli', profile: null, parts: null });
  });

  it('warns and goes on when the measurement cannot even be prepared', async () => {
    const engine = { ...(await engineView(true)), applied: () => Promise.reject(new Error('applied record unreadable')) };
    const warnings: string[] = [];
    const outcome = await new PcrMeasure({ pcr: 23, by: 'boot', tpm: noTpm, agentVersion: '1', warn: (m) => warnings.push(m) })
      .afterChange(engine, { operation: 'apply', changed: false });
    expect(outcome).toBeUndefined();
    expect(warnings).toEqual(['hardening measurement not recorded: applied record unreadable']);
  });
});
