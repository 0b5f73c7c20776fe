import { isIP } from 'node:net';

/** RFC 1123 host name label: letters, digits and inner hyphens, 1-63 characters. */
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * True for a DNS host name (dot-separated RFC 1123 labels, at most 253 characters, an
 * optional final dot) or an IPv4/IPv6 address. Anything else — a space, a newline, a
 * slash, a port, a scheme — is not a host, whoever sent it.
 */
export function isHostName(text: string): boolean {
  if (isIP(text) !== 0) return true;
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => LABEL.test(label));
}
