/**
 * Removes secrets from everything that goes into a support bundle. Pure. Two passes: JSON
 * values are redacted by the name of their key (anything that sounds like a password, token,
 * signature or key), and all text, JSON strings included, by pattern: SAS tokens and their
 * `sig=`, connection-string keys, PEM private keys, URL credentials (`user:pass@`), bearer
 * tokens, and `name=value` / `name: value` pairs with a secret-sounding name. Redaction
 * errs on the side of removing too much: a bundle is read by people who must not get keys.
 */
export const REDACTED = '[redacted]';

/** Key names whose values are public although they end in "key": a TPM's public areas. */
const PUBLIC_KEY_NAMES = new Set(['endorsementkey', 'storagerootkey']);
const SECRET_WORDS = /pass(word|wd|phrase)?|secret|token|credential|authori[sz]ation|signature|cookie|^sig$|^sas|^pwd$/;

/** Whether a value stored under `name` is to be treated as a secret. */
export function isSecretName(name: string): boolean {
  const flat = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (PUBLIC_KEY_NAMES.has(flat)) return false;
  return SECRET_WORDS.test(flat) || flat.endsWith('key') || flat.endsWith('keys');
}

const PATTERNS: [RegExp, string | ((...groups: string[]) => string)][] = [
  // A PEM private key of any kind, also one cut off before its END line.
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, `-----${REDACTED} PRIVATE KEY-----`],
  // IoT Hub / DPS SAS tokens as a whole: "SharedAccessSignature sr=…&sig=…&se=…&skn=…".
  [/SharedAccessSignature(\s+|%20|\+)[^\s"'`,;]*/g, `SharedAccessSignature ${REDACTED}`],
  // Storage and service SAS query strings, plain and URL-encoded.
  [/\bsig=[^&\s"'`,;]+/gi, `sig=${REDACTED}`],
  // Not inside a word (design%3D), but right after an encoded "?" (%3F ends in a letter).
  [/(?:(?<![A-Za-z])|(?<=%3F))sig%3D(?:(?!%26)[^&\s"'`,;])+/gi, `sig%3D${REDACTED}`],
  // Connection strings: SharedAccessKey=…; AccountKey=…; (not SharedAccessKeyName).
  [/\b(SharedAccessKey|AccountKey|PrimaryKey|SecondaryKey)(\s*=\s*)[^;\s"'`,]+/gi, (_m, name, eq) => `${name}${eq}${REDACTED}`],
  // Credentials in URLs: scheme://user:pass@host → scheme://[redacted]@host.
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@"'`]+@/gi, (_m, scheme) => `${scheme}${REDACTED}@`],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/-]{8,}=*/g, (_m, scheme) => `${scheme} ${REDACTED}`],
];

/**
 * `name=value`, `name: value`, `"name": "value"` (logfmt, env files, YAML, JSON, INI). A
 * value that opens a mapping or list is left alone: what is inside is looked at by name.
 */
const PAIR = /(["']?)([A-Za-z_][\w.-]*)\1(\s*[=:]\s*)("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;&"'`{}[\]][^\s,;&"'`{}]*)/g;

export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement as never);
  return out.replace(PAIR, (match: string, quote: string, name: string, sep: string, value: string) => {
    if (!isSecretName(lastSegment(name)) || value.includes(REDACTED)) return match;
    const quoted = value.startsWith('"') || value.startsWith("'") ? `${value[0]}${REDACTED}${value[0]}` : REDACTED;
    return `${quote}${name}${quote}${sep}${quoted}`;
  });
}

/** A JSON-like value with every secret-named field replaced and every string redacted as text. */
export function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactText(value);
  if (Array.isArray(value)) return value.map(redactValue);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key,
      isSecretName(key) && (typeof inner === 'string' || typeof inner === 'number') ? REDACTED : redactValue(inner)]));
  }
  return value;
}

/** A proxy setting with its credentials removed, with or without a scheme (`user:pass@host:3128`). */
export function redactProxy(value: string): string {
  const withScheme = redactText(value);
  return withScheme.includes('://') ? withScheme : withScheme.replace(/^[^@/\s]*@/, `${REDACTED}@`);
}

/** `tls.extraCaFile` → `extraCaFile`: the name that says what the value is. */
function lastSegment(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}
