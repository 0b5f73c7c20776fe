import { Http as HttpBase } from 'azure-iot-http-base';
import { Http as ProvisioningHttp } from 'azure-iot-provisioning-device-http';
import { ProvisioningServiceClient } from 'azure-iot-provisioning-service';

/**
 * The unmodified Azure SDKs, made to trust the local cloud's private CA without turning
 * verification off. NODE_EXTRA_CA_CERTS works too but is read only when a process starts;
 * inside a running process the CA goes through azure-iot-http-base's
 * Http.setOptions({ ca }), which passes it to https.request.
 */

/**
 * The device SDK's HTTPS transport, trusting `ca`: its constructor takes the base HTTP
 * transport. (The SDK pins its own copy of azure-iot-http-base; the top-level copy has the
 * same buildRequest/setOptions surface, hence the cast.)
 */
export function provisioningTransport(ca: string): ProvisioningHttp {
  const base = new HttpBase();
  base.setOptions({ ca });
  return new ProvisioningHttp(base as unknown as ConstructorParameters<typeof ProvisioningHttp>[0]);
}

/**
 * ProvisioningServiceClient.fromConnectionString, then the CA on the RestApiClient it made.
 * fromConnectionString takes no options and the client has no setOptions of its own, so
 * this reaches its `_restApiClient` (RestApiClient.setOptions is public). A child process
 * started with NODE_EXTRA_CA_CERTS needs none of this.
 */
export function provisioningServiceClient(connectionString: string, ca: string): ProvisioningServiceClient {
  const client = ProvisioningServiceClient.fromConnectionString(connectionString);
  (client as unknown as { _restApiClient: { setOptions(options: { ca: string }): void } })._restApiClient.setOptions({ ca });
  return client;
}
