import https from 'node:https';
import type { LookupFunction } from 'node:net';
import iothub from 'azure-iothub';
import { RestApiClient } from 'azure-iothub/dist/common-http/rest_api_client.js';

/**
 * The unmodified azure-iothub Client and Registry, made to trust the local cloud's
 * test CA. `fromConnectionString` has no CA option and installs its own keep-alive
 * agent, so this builds them the way fromConnectionString does, through their public
 * constructors, and hands the SDK's RestApiClient the CA with its own `setOptions`
 * (the SDK's Http layer passes `ca` to https.request). Certificate checks stay on.
 * A process started with NODE_EXTRA_CA_CERTS=<ca.pem> can use fromConnectionString as is.
 * `lookup` resolves a hub with a DNS name that the system does not know (test/support/hosts.ts).
 */
export function serviceClients(connectionString: string, ca: string, lookup?: LookupFunction): { client: iothub.Client; registry: iothub.Registry } {
  const cn = iothub.ConnectionString.parse(connectionString);
  if (!cn.HostName || !cn.SharedAccessKeyName || !cn.SharedAccessKey) throw new Error('service connection string needs HostName, SharedAccessKeyName and SharedAccessKey');
  const config = {
    host: cn.HostName,
    keyName: cn.SharedAccessKeyName,
    sharedAccessSignature: iothub.SharedAccessSignature.create(cn.HostName, cn.SharedAccessKeyName, cn.SharedAccessKey, anHourFromNow()),
  };
  const clientRest = new RestApiClient(config, 'azure-iothub');
  const client = new iothub.Client(new iothub.Amqp(config), clientRest);
  const registryRest = new RestApiClient(config, 'azure-iothub');
  const registry = new iothub.Registry(config, registryRest);
  // After the constructors, which each set a keep-alive agent of their own without a CA.
  for (const rest of [clientRest, registryRest]) rest.setOptions({ ca, http: { agent: new https.Agent({ keepAlive: true, ca, ...(lookup ? { lookup } : {}) }) } });
  return { client, registry };
}

function anHourFromNow(): number {
  return Math.floor(Date.now() / 1000) + 3600;
}
