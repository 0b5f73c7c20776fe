import { provisioningCommon } from './sdk-modules.js';

/**
 * The Azure SDKs compute SAS token expiry from Date.now(). On a board whose clock is
 * hours off, those tokens are already expired (or absurdly long) by the service's clock.
 * These two seams let the agent sign against the service's time instead; both are
 * private members of the SDKs, pinned by test/unit/azure-sdk-contract.test.ts.
 */

/** The fields TpmAuthenticationProvider (azure-iot-security-tpm) reads each time it signs a hub token. */
export interface HubTokenFields {
  _tokenValidTimeInSeconds: number;
  _tokenRenewalMarginInSeconds: number;
}

/**
 * The hub token's expiry is `Date.now()/1000 + _tokenValidTimeInSeconds` and it is renewed
 * `_tokenValidTimeInSeconds - _tokenRenewalMarginInSeconds` later: adding the clock
 * correction to both gives an expiry of service time + lifetime and keeps the renewal period.
 */
export function setHubTokenTiming(provider: object, lifetimeSeconds: number, renewalMarginSeconds: number, correctionMs: number): void {
  const fields = provider as HubTokenFields;
  const correction = Math.round(correctionMs / 1000);
  fields._tokenValidTimeInSeconds = lifetimeSeconds + correction;
  fields._tokenRenewalMarginInSeconds = renewalMarginSeconds + correction;
}

/**
 * The DPS registration token: tpm_registration.js calls azure-iot-common's anHourFromNow()
 * on its own copy of the package. Makes the provisioning SDK's registration tokens expire an hour after `now()` (service
 * time) instead of an hour after Date.now(); a later call replaces `now`.
 */
export function signDpsTokensWith(now: () => number): void {
  provisioningCommon().anHourFromNow = () => Math.ceil(now() / 1000 + 3600);
}
