import { lookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { withDeadline } from '../lib/deadline.js';
import { fail, pass, seconds, type CheckId, type CheckResult } from './result.js';

export type Resolution =
  | { ok: true; addresses: LookupAddress[]; literal: boolean }
  | { ok: false; code: string; timedOut: boolean };

/**
 * Resolves a host name the way a connection does (getaddrinfo, so /etc/hosts and
 * nsswitch count, not only DNS), within `timeoutMs`. An IP address resolves to itself.
 */
export function resolveHost(host: string, timeoutMs: number): Promise<Resolution> {
  const family = isIP(host);
  if (family !== 0) return Promise.resolve({ ok: true, addresses: [{ address: host, family }], literal: true });
  const work = new Promise<Resolution>((resolve) => {
    lookup(host, { all: true }, (err, addresses) => {
      if (err) resolve({ ok: false, code: err.code ?? err.message, timedOut: false });
      else if (addresses.length === 0) resolve({ ok: false, code: 'ENODATA', timedOut: false });
      else resolve({ ok: true, addresses, literal: false });
    });
  });
  return withDeadline(work, timeoutMs, () => ({ ok: false, code: 'ETIMEOUT', timedOut: true }));
}

export interface NameContext {
  id: CheckId;
  /** "DPS" or "hub", for the message. */
  role: string;
  host: string;
  /** Where the name comes from, for the hint, e.g. "provisioning.globalEndpoint in the config". */
  origin: string;
}

export function describeResolution(name: NameContext, resolution: Resolution, timeoutMs: number): CheckResult {
  const { id, role, host, origin } = name;
  if (resolution.ok) {
    if (resolution.literal) return pass(id, `${role} ${host} is an IP address: nothing to resolve`);
    const addresses = resolution.addresses.map((a) => a.address);
    const shown = addresses.length > 4 ? [...addresses.slice(0, 4), `${addresses.length - 4} more`] : addresses;
    return pass(id, `${role} ${host} resolves to ${shown.join(', ')}`);
  }
  const resolver = 'check the network link and the name servers in /etc/resolv.conf; a firewall must let DNS (port 53) out';
  if (resolution.timedOut) {
    return fail(id, `${role} ${host}: no answer from the resolver within ${seconds(timeoutMs)}`, resolver);
  }
  switch (resolution.code) {
    case 'ENOTFOUND':
    case 'ENODATA':
      return fail(id, `${role} ${host} does not resolve (${resolution.code}): no such name`,
        `check ${origin} for a typo; if the name is right, ${resolver}`);
    case 'EAI_AGAIN':
      return fail(id, `${role} ${host} could not be resolved now (EAI_AGAIN): the name servers did not answer`, resolver);
    default:
      return fail(id, `${role} ${host} could not be resolved (${resolution.code})`, resolver);
  }
}
