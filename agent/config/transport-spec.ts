import { AgentError, ExitCode } from '../lib/errors.js';
import { isHostName } from '../lib/host-name.js';

/**
 * Which TPM the agent talks to, chosen by one string in the style of tpm2-tss TCTIs,
 * so that boards, QA and tests run the same code and differ only by configuration.
 */
export type TransportSpec =
  | { kind: 'device'; path: string }
  | { kind: 'swtpm'; host: string; port: number }
  | { kind: 'mssim'; host: string; port: number };

export const DEFAULT_TRANSPORT = 'device:/dev/tpmrm0';

export const ACCEPTED_FORMS = [
  'device:/dev/tpmrm0',
  'swtpm:host=127.0.0.1,port=2321',
  'mssim:host=127.0.0.1,port=2321',
] as const;

const DEFAULT_PORT = 2321;
const DEFAULT_HOST = '127.0.0.1';

export class TransportSpecError extends AgentError {
  static override readonly errorName: string = 'TransportSpecError';

  constructor(text: string, reason: string) {
    super(`invalid TPM transport ${JSON.stringify(text)}: ${reason}`, {
      hint: `accepted forms: ${ACCEPTED_FORMS.join(', ')}`,
      exitCode: ExitCode.usage,
    });
  }
}

export function parseTransport(text: string): TransportSpec {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  const kind = colon === -1 ? trimmed : trimmed.slice(0, colon);
  const rest = colon === -1 ? '' : trimmed.slice(colon + 1);
  switch (kind) {
    case 'device':
      return { kind, path: parseDevicePath(text, rest) };
    case 'swtpm':
    case 'mssim':
      return { kind, ...parseHostPort(text, rest) };
    case '':
      throw new TransportSpecError(text, 'it is empty');
    default:
      throw new TransportSpecError(text, `unknown kind ${JSON.stringify(kind)} (expected device, swtpm or mssim)`);
  }
}

export function formatTransport(spec: TransportSpec): string {
  return spec.kind === 'device' ? `device:${spec.path}` : `${spec.kind}:host=${spec.host},port=${spec.port}`;
}

function parseDevicePath(text: string, rest: string): string {
  if (rest === '') return '/dev/tpmrm0';
  if (!rest.startsWith('/')) throw new TransportSpecError(text, `device path ${JSON.stringify(rest)} is not absolute`);
  if (/[\s\0]/.test(rest)) throw new TransportSpecError(text, 'device path contains white space or NUL');
  return rest;
}

function parseHostPort(text: string, rest: string): { host: string; port: number } {
  let host = DEFAULT_HOST;
  let port = DEFAULT_PORT;
  const seen = new Set<string>();
  for (const pair of rest === '' ? [] : rest.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new TransportSpecError(text, `expected key=value, got ${JSON.stringify(pair)}`);
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (seen.has(key)) throw new TransportSpecError(text, `${key} is given twice`);
    seen.add(key);
    if (key === 'host') {
      // An IPv6 address may come in brackets, as in a URL; whatever is inside must be a host.
      const bare = value.replace(/^\[(.*)\]$/, '$1');
      if (!isHostName(bare)) throw new TransportSpecError(text, `host ${JSON.stringify(value)} is not a host name or address`);
      host = bare;
    } else if (key === 'port') {
      // The control (swtpm) or platform (mssim) channel listens on port + 1.
      if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65534) {
        throw new TransportSpecError(text, `port ${JSON.stringify(value)} is not a number from 1 to 65534`);
      }
      port = Number(value);
    } else {
      throw new TransportSpecError(text, `unknown key ${JSON.stringify(key)} (expected host or port)`);
    }
  }
  return { host, port };
}
