import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { loadProfile, loadProfileByName, mergeProfiles, parseProfileText, SITE_PROFILE_DIR } from '../../hardening/load-profile.js';
import { PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../../agent/lib/validate.js';

const roots: string[] = [];
afterEach(() => {
  for (const dir of roots.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A root directory with these site profiles (file name → YAML text). */
function rootWith(files: Record<string, string>): { root: string; site: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'iot-agent-profiles-'));
  roots.push(root);
  const site = path.join(root, SITE_PROFILE_DIR);
  mkdirSync(site, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(site, name), text);
  return { root, site };
}

async function failure(promise: Promise<unknown>): Promise<AgentError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AgentError);
  return err as AgentError;
}

describe('finding a profile', () => {
  it('finds a built-in by name', async () => {
    const { profile, origin } = await loadProfile('strict', rootWith({}).root);
    expect(origin).toBe('builtin:strict');
    expect(profile).toMatchObject({ name: 'strict', ipv6: 'disable' });
    expect(Object.keys(BUILTIN_PROFILES)).toEqual(['baseline', 'strict']);
  });

  it('finds a site profile by name in <root>/etc/iot-agent/profiles, .yaml before .yml, named after its file', async () => {
    const { root, site } = rootWith({ 'lab.yaml': 'ipv6: leave\n', 'lab.yml': 'ipv6: disable\n', 'old.yml': 'ipv6: disable\n' });
    expect(SITE_PROFILE_DIR).toBe('etc/iot-agent/profiles');
    expect(await loadProfile('lab', root)).toMatchObject({ origin: path.join(site, 'lab.yaml'), profile: { name: 'lab', ipv6: 'leave' } });
    expect(await loadProfile('old', root)).toMatchObject({ origin: path.join(site, 'old.yml'), profile: { name: 'old', ipv6: 'disable' } });
  });

  it('prefers a built-in to a site profile of the same name', async () => {
    const { root } = rootWith({ 'strict.yaml': 'ipv6: leave\n' });
    expect((await loadProfile('strict', root)).origin).toBe('builtin:strict');
  });

  it('reads a path as a file, named after it without .yaml or .yml, unless the document names itself', async () => {
    const { site } = rootWith({ 'a.yml': 'ipv6: leave\n', 'b.yaml': 'name: bee\n' });
    expect(await loadProfile(path.join(site, 'a.yml'))).toMatchObject({ origin: path.join(site, 'a.yml'), profile: { name: 'a', ipv6: 'leave' } });
    expect((await loadProfile(path.join(site, 'b.yaml'))).profile.name).toBe('bee');
  });

  it('takes a name ending in .yaml as a path, never as a built-in', async () => {
    expect((await failure(loadProfile('strict.yaml'))).message).toBe('profile file strict.yaml does not exist');
  });

  it('takes a name ending in .yml as a path too, but not one with .yaml inside it', async () => {
    expect((await failure(loadProfile('strict.yml'))).message).toBe('profile file strict.yml does not exist');
    expect((await failure(loadProfile('strict.yamlx'))).message).toBe('invalid profile name "strict.yamlx"');
  });

  it('names a profile file after its whole name when it does not end in .yaml or .yml', async () => {
    const { site } = rootWith({ 'lab.yamlx': 'ipv6: leave\n' });
    expect((await loadProfile(path.join(site, 'lab.yamlx'))).profile.name).toBe('lab.yamlx');
  });

  it('looks for site profiles under / unless given another root', async () => {
    expect((await failure(loadProfile('nope-not-here'))).hint).toBe('built-in profiles: baseline, strict; site profiles live in /etc/iot-agent/profiles');
    expect((await failure(loadProfileByName('nope-not-here'))).hint).toBe('built-in profiles: baseline, strict; site profiles live in /etc/iot-agent/profiles');
  });

  it('says which profiles exist when a name matches none', async () => {
    const { root } = rootWith({});
    const err = await failure(loadProfile('nope', root));
    expect(err.message).toBe('no profile "nope"');
    expect(err.hint).toBe(`built-in profiles: baseline, strict; site profiles live in ${path.join(root, SITE_PROFILE_DIR)}`);
    expect(err.exitCode).toBe(2);
  });

  it('says a path does not exist', async () => {
    const err = await failure(loadProfile('/nonexistent/site.yaml'));
    expect(err.message).toBe('profile file /nonexistent/site.yaml does not exist');
    expect(err.exitCode).toBe(2);
  });

  it('says it cannot read a profile that is there but unreadable', async () => {
    const { root, site } = rootWith({});
    mkdirSync(path.join(site, 'dir.yaml'));
    const err = await failure(loadProfile('dir', root));
    expect(err.message).toBe(`cannot read profile ${path.join(site, 'dir.yaml')}`);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('EISDIR');
    expect(err.exitCode).toBe(2);
  });

  it('refuses a name that is neither a profile name nor a path', async () => {
    const err = await failure(loadProfile('-rf'));
    expect(err.message).toBe('invalid profile name "-rf"');
    expect(err.hint).toBe('give a built-in name (baseline, strict), a site profile name, or a path to a .yaml file');
    expect(err.exitCode).toBe(2);
  });
});

describe('finding a profile by name only (the cloud, the root unit)', () => {
  it('finds built-in and site profiles', async () => {
    const { root } = rootWith({ 'lab-2.yaml': 'ipv6: leave\n' });
    expect((await loadProfileByName('baseline', root)).origin).toBe('builtin:baseline');
    expect((await loadProfileByName('lab-2', root)).profile.name).toBe('lab-2');
  });

  it('never reads a path, whatever it looks like', async () => {
    const { site } = rootWith({ 'a.yaml': 'ipv6: leave\n' });
    for (const spec of [path.join(site, 'a.yaml'), 'a.yaml', '../a', 'a/b']) {
      const err = await failure(loadProfileByName(spec));
      expect(err.message).toBe(`invalid profile name ${JSON.stringify(spec)}`);
      expect(err.hint).toBe(`give ${PROFILE_NAME_EXPECTED}; never a path`);
      expect(err.exitCode).toBe(2);
    }
  });

  it('quotes at most 80 characters of a name it refuses', async () => {
    expect((await failure(loadProfileByName(`/${'x'.repeat(200)}`))).message).toBe(`invalid profile name "/${'x'.repeat(79)}"`);
  });
});

describe('profile names', () => {
  it('are letters, digits, _ and -, starting with a letter or digit, at most 64', () => {
    for (const name of ['a', 'Z', '9', 'site_2-b', `a${'b'.repeat(63)}`]) expect(PROFILE_NAME.test(name), name).toBe(true);
    for (const name of ['', '-a', '_a', 'a.b', 'a/b', 'a b', 'a\n', `a${'b'.repeat(64)}`, '../a']) expect(PROFILE_NAME.test(name), name).toBe(false);
    expect(PROFILE_NAME_EXPECTED).toBe('a built-in or site profile name (letters, digits, _ and -, at most 64)');
  });
});

describe('extends', () => {
  it('puts a site profile over a built-in one: mappings merged, the child\'s name', async () => {
    const { root, site } = rootWith({ 'field.yaml': 'extends: strict\nfirewall: { icmp_echo: limit }\n' });
    const { profile, origin } = await loadProfile('field', root);
    expect(origin).toBe(path.join(site, 'field.yaml'));
    expect(profile).toMatchObject({ name: 'field', ipv6: 'disable', usb: { mode: 'authorized-only' }, firewall: { icmpEcho: { mode: 'limit' }, synLimit: { rate: '20/second', burst: 40 } } });
  });

  it('follows a chain of site profiles', async () => {
    const { root } = rootWith({ 'a.yaml': 'extends: b\nipv6: leave\n', 'b.yml': 'extends: baseline\nusb: { mode: leave }\n' });
    expect((await loadProfile('a', root)).profile).toMatchObject({ name: 'a', ipv6: 'leave', usb: { mode: 'leave' }, firewall: { inbound: [{ ports: { from: 22, to: 22 } }] } });
  });

  it('refuses a cycle, naming it', async () => {
    const { root, site } = rootWith({ 'a.yaml': 'extends: b\n', 'b.yaml': 'extends: a\n', 'self.yaml': 'extends: self\n' });
    const a = path.join(site, 'a.yaml');
    const b = path.join(site, 'b.yaml');
    expect((await failure(loadProfile('a', root))).message).toBe(`profile ${a}: extends: cycle: ${a} -> ${b} -> ${a}`);
    expect((await failure(loadProfile('self', root))).message).toMatch(/extends: cycle: (\S+self\.yaml) -> \1$/);
  });

  it('takes only a profile name as parent, never a path', async () => {
    const { root, site } = rootWith({ 'p.yaml': 'extends: ../../../../etc/x\n', 'n.yaml': 'extends: 5\n' });
    expect((await failure(loadProfile('p', root))).message).toBe(`profile ${path.join(site, 'p.yaml')}: extends: must be the name of a built-in or site profile`);
    expect((await failure(loadProfile('n', root))).message).toContain('extends: must be the name of a built-in or site profile');
  });

  it('fails as the parent fails when the parent is missing', async () => {
    const { root } = rootWith({ 'orphan.yaml': 'extends: gone\n' });
    expect((await failure(loadProfile('orphan', root))).message).toBe('no profile "gone"');
  });
});

describe('profile text', () => {
  it('is a YAML mapping; an empty document is the defaults, named by the caller', () => {
    expect(parseProfileText('', 'x.yaml', 'x')).toEqual({ name: 'x' });
    expect(parseProfileText('name: own\nipv6: leave\n', 'x.yaml', 'x')).toEqual({ name: 'own', ipv6: 'leave' });
  });

  it('refuses YAML it cannot parse with the parser\'s first line, and anything but a mapping', () => {
    expect(() => parseProfileText('a: [1,\n', 'x.yaml', 'x')).toThrow(/^profile x\.yaml: not valid YAML: [^\n]+$/);
    // The parser's message alone: no position, no excerpt of the text.
    expect(() => parseProfileText('a: [1,\n', 'x.yaml', 'x'))
      .toThrow(/^profile x\.yaml: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a \]$/);
    expect(() => parseProfileText('ipv6: leave\nipv6: disable\n', 'x.yaml', 'x')).toThrow(/^profile x\.yaml: not valid YAML: Map keys must be unique$/);
    expect(() => parseProfileText('- a\n- b\n', 'x.yaml', 'x')).toThrow(/^profile x\.yaml: must be a YAML mapping at the top level$/);
    expect(() => parseProfileText('just text\n', 'x.yaml', 'x')).toThrow(/must be a YAML mapping at the top level/);
  });

  it('merges mappings at every depth, and lets the child replace a mapping by a value or a value by a mapping', () => {
    const parent = { firewall: { outbound: { defaults: true, allow: [1] }, icmp_echo: 'drop' }, usb: 'x', ipv6: 'disable' };
    const merged = mergeProfiles(parent, { firewall: { outbound: { allow: [2] } }, usb: { mode: 'leave' }, ipv6: null });
    expect(merged).toEqual({ firewall: { outbound: { defaults: true, allow: [2] }, icmp_echo: 'drop' }, usb: { mode: 'leave' }, ipv6: null });
    expect(mergeProfiles({ firewall: { inbound: [] } }, { firewall: [] })).toEqual({ firewall: [] });
    expect(mergeProfiles({ usb: { mode: 'leave' } }, { usb: null })).toEqual({ usb: null });
    expect(parent.firewall.outbound.allow).toEqual([1]);
  });
});
