import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import type { TransportOptions } from '../../agent/tpm/transport.js';

export function clientFor(transport: string, options: TransportOptions = {}): TpmClient {
  return new TpmClient(openTransport(parseTransport(transport), options));
}
