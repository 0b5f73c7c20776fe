import { checkSas, parseSas, SasError } from '../sas.js';
import { errors } from './hub-error.js';

/**
 * The service side's credential check: `SharedAccessSignature sr={host}&sig=…&se=…&skn={policy}`
 * signed with that shared access policy's key. Throws HubError 401 otherwise.
 */
export function checkServiceAuthorization(header: string | undefined, hostName: string, policies: Map<string, Buffer>,
  nowSeconds = Math.floor(Date.now() / 1000)): string {
  if (!header) throw errors.unauthorized('no Authorization header');
  let token;
  try {
    token = parseSas(header);
  } catch (err) {
    if (err instanceof SasError) throw errors.unauthorized(`malformed token (${err.message})`);
    throw err;
  }
  if (!/^SharedAccessSignature\s/.test(header.trim())) throw errors.unauthorized('token is not a SharedAccessSignature');
  if (token.resource.toLowerCase() !== hostName.toLowerCase()) throw errors.unauthorized(`token is for ${token.resource}, not ${hostName}`);
  const key = token.keyName === undefined ? undefined : policies.get(token.keyName);
  if (!key) throw errors.unauthorized(`unknown shared access policy ${JSON.stringify(token.keyName ?? '')}`);
  const result = checkSas(token, key, nowSeconds);
  if (result === 'expired') throw errors.unauthorized('token expired');
  if (result !== 'ok') throw errors.unauthorized('signature does not match the policy key');
  return token.keyName as string;
}
