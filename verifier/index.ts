/**
 * The attestation verifier as a library, for an operator's backend: the same checks as the
 * `iot-agent-verify` command, with the IoT Hub clients, the binding store and the EK source
 * of the caller's choosing.
 */
export { bindAttestationKey, type Binding } from './bind.js';
export { FileBindingStore, type BindingStore } from './bindings.js';
export { hubChannel, serviceClientsFrom, type DeviceChannel, type ServiceClients } from './channel.js';
export { verifyAttestation, type Check, type CheckId, type CheckStatus, type EventSummary, type Posture, type Verdict, type VerifyInput } from './checks.js';
export { endorsementKeyFromDps, endorsementKeyFromFile, parseEndorsementKeyText } from './endorsement-key.js';
export { VerifierError } from './errors.js';
export { parseGolden, readGolden, writeGolden } from './golden.js';
export { formatVerdict, verdictJson } from './report.js';
export { verifyDevice, type DeviceVerdict, type VerifyDeviceOptions } from './verify-device.js';
export { DEFAULT_ATTESTATION_PCR } from '../agent/config.js';
