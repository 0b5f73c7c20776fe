import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hardeningEventText, parseHardeningEvent } from '../../agent/attestation/hardening-event.js';
import { MAX_EVENT_DATA_BYTES } from '../../agent/attestation/event-log.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { hardeningEvent } from '../../agent/attestation/hardening-measure.js';
import { buildPlan, planJson } from '../../hardening/plan.js';

const usb = (controllers: string[]) => ({ controllers, networkDevices: [] });
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('what a hardening measurement says', () => {
  it('names the profile and hashes each loaded part the way `harden plan --json` shows it', async () => {
    const { profile, origin } = await loadProfile('strict');
    const plan = buildPlan(profile, origin, usb(['usb1']), null);
    const json = planJson(plan, '/');
    const event = hardeningEvent(plan, 'apply', 'boot', '1.2.3');
    expect(event).toMatchObject({ op: 'apply', by: 'boot', profile: 'strict', profileHash: plan.hash, agentVersion: '1.2.3' });
    expect(event.parts!.iptables).toBe(sha256(json.iptablesRestore as string));
    expect(event.parts!.ip6tables).toBe(json.ip6tablesRestore === null ? null : sha256(json.ip6tablesRestore as string));
    const text = hardeningEventText(event);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_EVENT_DATA_BYTES);
    expect(parseHardeningEvent(text)).toMatchObject(event);
  });

  it('differs between profiles in every part they render differently, and by the board\'s USB controllers only in sysfs', async () => {
    const baseline = await loadProfile('baseline');
    const strict = await loadProfile('strict');
    const a = hardeningEvent(buildPlan(baseline.profile, baseline.origin, usb(['usb1']), null), 'apply', 'cli', '1');
    const b = hardeningEvent(buildPlan(strict.profile, strict.origin, usb(['usb1']), null), 'apply', 'cli', '1');
    expect(a.profileHash).not.toBe(b.profileHash);
    expect(a.parts!.iptables).not.toBe(b.parts!.iptables);
    const twoControllers = hardeningEvent(buildPlan(strict.profile, strict.origin, usb(['usb1', 'usb2']), null), 'apply', 'cli', '1');
    expect({ ...twoControllers.parts, sysfs: null }).toEqual({ ...b.parts, sysfs: null });
  });

  it('says "no profile" when none is in force', () => {
    expect(hardeningEvent(null, 'rollback', 'cli', '1')).toEqual({ op: 'rollback', by: 'cli', profile: null, profileHash: null, parts: null, agentVersion: '1' });
  });
});
