import { describe, expect, it } from 'vitest';
import { HardeningEventError, hardeningEventText, parseHardeningEvent, sameState, type HardeningEvent } from '../../agent/attestation/hardening-event.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

/** What the boot unit measures after applying the baseline profile (IPv4 and IPv6 rules loaded). */
function applied(): HardeningEvent {
  return {
    type: 'iot-agent/hardening', op: 'apply', by: 'boot', profile: 'baseline', profileHash: A, agentVersion: '0.1.0',
    parts: { iptables: A, ip6tables: B, sysctls: A, files: B, sysfs: A },
  };
}

/** The event's JSON with `edit` applied to its parsed form. */
function edited(edit: (event: Record<string, unknown>) => void): string {
  const event = JSON.parse(hardeningEventText(applied())) as Record<string, unknown>;
  edit(event);
  return JSON.stringify(event);
}

function refusal(text: string): string {
  try {
    parseHardeningEvent(text);
  } catch (err) {
    expect(err).toBeInstanceOf(HardeningEventError);
    return (err as Error).message;
  }
  throw new Error('expected a HardeningEventError');
}

describe('hardening events read back', () => {
  it('read the event of an applied profile with both firewalls', () => {
    expect(parseHardeningEvent(hardeningEventText(applied()))).toEqual(applied());
  });

  it('read an event whose profile loads no firewall rules', () => {
    const event = { ...applied(), parts: { ...applied().parts!, iptables: null, ip6tables: null } };
    expect(parseHardeningEvent(hardeningEventText(event))).toEqual(event);
  });

  it('read every measurer and operation', () => {
    for (const by of ['boot', 'cli', 'agent', 'guard'] as const) {
      for (const op of ['apply', 'rollback'] as const) expect(parseHardeningEvent(hardeningEventText({ ...applied(), by, op }))).toMatchObject({ by, op });
    }
  });

  it('keep the fixed key order whatever order the caller\'s object has', () => {
    const event = applied();
    const shuffled = { agentVersion: event.agentVersion, parts: { sysfs: A, files: B, sysctls: A, ip6tables: B, iptables: A }, profileHash: A, profile: 'baseline', by: 'boot', op: 'apply' } as const;
    expect(hardeningEventText(shuffled)).toBe(hardeningEventText(event));
  });

  it.each<[string, (e: Record<string, unknown>) => void, string]>([
    ['an unknown key', (e) => { e.extra = 1; }, 'hardening event: unknown key "extra"'],
    ['a long unknown key', (e) => { e['k'.repeat(50)] = 1; }, `hardening event: unknown key "${'k'.repeat(40)}"`],
    ['a missing key', (e) => { delete e.agentVersion; }, 'hardening event: agentVersion is missing'],
    ['another type', (e) => { e.type = 'iot-agent/other'; }, 'hardening event: type is not iot-agent/hardening'],
    ['an unknown operation', (e) => { e.op = 'flush'; }, 'hardening event: op is not one of apply, rollback'],
    ['an operation that is not text', (e) => { e.op = 1; }, 'hardening event: op is not one of apply, rollback'],
    ['an unknown measurer', (e) => { e.by = 'root'; }, 'hardening event: by is not one of boot, cli, agent, guard'],
    ['a version with a space', (e) => { e.agentVersion = '0.1.0 beta'; }, 'hardening event: agentVersion is not valid'],
    ['a version after a space', (e) => { e.agentVersion = ' 0.1.0'; }, 'hardening event: agentVersion is not valid'],
    ['a version of 65 characters', (e) => { e.agentVersion = '1'.repeat(65); }, 'hardening event: agentVersion is not valid'],
    ['a version that is not text', (e) => { e.agentVersion = 1; }, 'hardening event: agentVersion is not valid'],
    ['a profile name with a slash', (e) => { e.profile = 'baseline/x'; }, 'hardening event: profile is not valid'],
    ['a profile name starting with a dot', (e) => { e.profile = '.baseline'; }, 'hardening event: profile is not valid'],
    ['a profile hash with a character more', (e) => { e.profileHash = `${A}0`; }, 'hardening event: profileHash is not valid'],
    ['a profile hash after a character', (e) => { e.profileHash = `x${A}`; }, 'hardening event: profileHash is not valid'],
    ['parts that are not an object', (e) => { e.parts = [A]; }, 'hardening event parts: not an object'],
    ['an unknown part', (e) => { (e.parts as Record<string, unknown>).nft = A; }, 'hardening event parts: unknown key "nft"'],
    ['a missing part', (e) => { delete (e.parts as Record<string, unknown>).files; }, 'hardening event parts: files is missing'],
    ['an iptables digest that is not one', (e) => { (e.parts as Record<string, unknown>).iptables = 'abc'; }, 'hardening event: parts.iptables is not valid'],
    ['an ip6tables digest with a character more', (e) => { (e.parts as Record<string, unknown>).ip6tables = `${B}0`; }, 'hardening event: parts.ip6tables is not valid'],
    ['a sysctls digest after a character', (e) => { (e.parts as Record<string, unknown>).sysctls = `x${A}`; }, 'hardening event: parts.sysctls is not valid'],
    ['no files digest', (e) => { (e.parts as Record<string, unknown>).files = null; }, 'hardening event: parts.files is not valid'],
    ['no sysfs digest', (e) => { (e.parts as Record<string, unknown>).sysfs = null; }, 'hardening event: parts.sysfs is not valid'],
    ['no profile but a hash', (e) => { e.profile = null; e.parts = null; }, 'hardening event: no profile, yet a hash or parts'],
    ['no profile but parts', (e) => { e.profile = null; e.profileHash = null; }, 'hardening event: no profile, yet a hash or parts'],
  ])('refuse %s, naming it', (_what, edit, message) => {
    expect(refusal(edited(edit))).toBe(message);
  });

  it.each([
    ['not JSON', 'apply baseline', 'hardening event: not JSON'],
    ['a list', '[]', 'hardening event: not an object'],
    ['null', 'null', 'hardening event: not an object'],
    ['text', '"apply"', 'hardening event: not an object'],
  ])('refuse %s', (_what, text, message) => {
    expect(refusal(text)).toBe(message);
  });
});

describe('comparing hardening events', () => {
  it('finds the same state whoever measured it and however', () => {
    expect(sameState(applied(), { ...applied(), by: 'guard', op: 'rollback', agentVersion: '0.2.0' })).toBe(true);
  });

  it('finds another state when the profile, its hash or any loaded part differs', () => {
    expect(sameState(applied(), { ...applied(), profile: 'strict' })).toBe(false);
    expect(sameState(applied(), { ...applied(), profileHash: B })).toBe(false);
    expect(sameState(applied(), { ...applied(), parts: { ...applied().parts!, ip6tables: null } })).toBe(false);
  });
});
