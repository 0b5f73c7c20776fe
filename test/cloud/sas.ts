import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Shared access signatures as Azure IoT Hub and DPS use them:
 * `SharedAccessSignature sr=<urlenc(resource)>&sig=<urlenc(b64(hmac))>&se=<unix s>[&skn=<key name>]`,
 * signed over `urlenc(resource) + "\n" + se` with HMAC-SHA256.
 */
export interface SasToken {
  /** The resource URI, decoded. */
  resource: string;
  signature: Buffer;
  expiry: number;
  keyName: string | undefined;
}

export class SasError extends Error {}

/** encodeURIComponent that also escapes !'()*, as the Azure SDKs do. */
export function encodeUriComponentStrict(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function stringToSign(resource: string, expiry: number): string {
  return `${encodeUriComponentStrict(resource)}\n${expiry}`;
}

export function sign(key: Buffer, resource: string, expiry: number): Buffer {
  return createHmac('sha256', key).update(stringToSign(resource, expiry)).digest();
}

export function createSas(key: Buffer, resource: string, expiry: number, keyName?: string): string {
  const sig = encodeURIComponent(sign(key, resource, expiry).toString('base64'));
  return `SharedAccessSignature sr=${encodeUriComponentStrict(resource)}&sig=${sig}&se=${expiry}${keyName ? `&skn=${encodeURIComponent(keyName)}` : ''}`;
}

/** Parses a SAS token (with or without the `SharedAccessSignature ` prefix); throws SasError when malformed. */
export function parseSas(text: string): SasToken {
  const body = text.trim().replace(/^SharedAccessSignature\s+/, '');
  const fields = new Map<string, string>();
  for (const part of body.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new SasError(`malformed SAS field ${JSON.stringify(part.slice(0, 40))}`);
    const key = part.slice(0, eq);
    if (fields.has(key)) throw new SasError(`SAS field ${key} appears twice`);
    let value: string;
    try {
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      throw new SasError(`SAS field ${key} is not valid URL encoding`);
    }
    fields.set(key, value);
  }
  const resource = fields.get('sr');
  const sig = fields.get('sig');
  const se = fields.get('se');
  if (!resource || !sig || !se) throw new SasError('SAS token needs sr, sig and se');
  if (!/^\d{1,12}$/.test(se)) throw new SasError('SAS expiry (se) is not a number');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) throw new SasError('SAS signature (sig) is not base64');
  return { resource, signature: Buffer.from(sig, 'base64'), expiry: Number(se), keyName: fields.get('skn') };
}

/** A SAS token from an Authorization header; a malformed one becomes the caller's refusal (each service's 401). */
export function parseSasOrRefuse(authorization: string, refuse: (why: string) => Error): SasToken {
  try {
    return parseSas(authorization);
  } catch (err) {
    if (err instanceof SasError) throw refuse(err.message);
    throw err;
  }
}

export type SasCheck = 'ok' | 'expired' | 'bad-signature';

/** Checks the signature against `key` and the expiry against `nowSeconds`. */
export function checkSas(token: SasToken, key: Buffer, nowSeconds = Math.floor(Date.now() / 1000)): SasCheck {
  const expected = sign(key, token.resource, token.expiry);
  if (expected.length !== token.signature.length || !timingSafeEqual(expected, token.signature)) return 'bad-signature';
  if (token.expiry <= nowSeconds) return 'expired';
  return 'ok';
}
