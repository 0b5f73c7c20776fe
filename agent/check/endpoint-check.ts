import { describeResolution, resolveHost } from './dns-check.js';
import { fail, type CheckId, type CheckResult } from './result.js';
import { describeTls } from './tls-check.js';
import { probeTls } from './tls-probe.js';
import type { Trust } from './trust.js';

export interface Endpoint {
  dnsId: CheckId;
  tlsId: CheckId;
  role: string;
  host: string;
  port: number;
  /** Where the name comes from, for hints. */
  origin: string;
}

/**
 * Resolves an endpoint, then shakes hands with it at the addresses found. The two steps
 * each have their own deadline, so one endpoint takes at most two of them.
 */
export async function checkEndpoint(endpoint: Endpoint, trust: Trust, stepTimeoutMs: number): Promise<[CheckResult, CheckResult]> {
  const { dnsId, tlsId, role, host, port, origin } = endpoint;
  const resolution = await resolveHost(host, stepTimeoutMs);
  const dns = describeResolution({ id: dnsId, role, host, origin }, resolution, stepTimeoutMs);
  if (!resolution.ok) return [dns, fail(tlsId, `not tried: ${role} ${host} does not resolve (see ${dnsId})`, `fix ${dnsId} first`)];
  if (!trust.ok) return [dns, fail(tlsId, `not tried: ${trust.problem}`, trust.hint)];
  const outcome = await probeTls({ host, port, addresses: resolution.addresses, ca: trust.ca, timeoutMs: stepTimeoutMs });
  return [dns, describeTls({ id: tlsId, role, host, port, extraCaFile: trust.extraCaFile, timeoutMs: stepTimeoutMs }, outcome)];
}
