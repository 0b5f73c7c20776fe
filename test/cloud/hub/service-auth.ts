import { checkSas, parseSasOrRefuse } from '../sas.js';
import { hubErrors } from '../errors.js';

/**
 * The service side's credential check: `SharedAccessSignature sr={host}&sig=…&se=…&skn={policy}`
 * signed with that shared access policy's key. Throws SimHubError 401 otherwise.
 */
export function checkServiceAuthorization(header: string | undefined, hostName: string, policies: Map<string, Buffer>,
  nowSeconds = Math.floor(Date.now() / 1000)): string {
  if (!header) throw hubErrors.unauthorized('no Authorization header');
  const token = parseSasOrRefuse(header, (why) => hubErrors.unauthorized(`malformed token (${why})`));
  if (!/^SharedAccessSignature\s/.test(header.trim())) throw hubErrors.unauthorized('token is not a SharedAccessSignature');
  if (token.resource.toLowerCase() !== hostName.toLowerCase()) throw hubErrors.unauthorized(`token is for ${token.resource}, not ${hostName}`);
  const key = token.keyName === undefined ? undefined : policies.get(token.keyName);
  if (!key) throw hubErrors.unauthorized(`unknown shared access policy ${JSON.stringify(token.keyName ?? '')}`);
  const result = checkSas(token, key, nowSeconds);
  if (result === 'expired') throw hubErrors.unauthorized('token expired');
  if (result !== 'ok') throw hubErrors.unauthorized('signature does not match the policy key');
  return token.keyName as string;
}
