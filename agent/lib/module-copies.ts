/**
 * The CommonJS modules the agent loads with require() rather than import, listed by the
 * agent module that loads them (its path in the repository), each as the chain of packages
 * Node resolves it along: the first from that module, each next from the package before it.
 *
 * A chain of several reaches the very copy a package of the Azure SDK loads: azure-iot-mqtt-base
 * bundles its own mqtt.js (with its own ws and mqtt-packet), azure-iot-provisioning-device its
 * own azure-iot-common; a plain import would reach another copy, or none. A chain of one is a
 * package of the agent's own, required to spare Node's ESM export scan (tss.js: 50 to 100 ms of
 * start-up) or to load it only when needed (yaml, which the bundle keeps in a file of its own).
 *
 * Data only. At run time requireCopy() walks a chain with createRequire; packaging/bundle.mjs
 * resolves each chain the same way at build time into a static require of the same file, so
 * the bundle holds the same copies as node_modules.
 */
export const MODULE_COPIES = {
  'agent/azure-sdk/sdk-modules.ts': {
    'azure-iot-mqtt-base': ['azure-iot-device-mqtt', 'azure-iot-mqtt-base'],
    mqtt: ['azure-iot-mqtt-base', 'mqtt'],
    ws: ['azure-iot-mqtt-base', 'mqtt', 'ws'],
    'mqtt-packet': ['azure-iot-mqtt-base', 'mqtt', 'mqtt-packet'],
    'azure-iot-common': ['azure-iot-provisioning-device', 'azure-iot-common'],
  },
  'agent/tpm/tss-lib.ts': { 'tss.js': ['tss.js'] },
  'agent/config.ts': { yaml: ['yaml'] },
  'agent/check/config-salvage.ts': { yaml: ['yaml'] },
  'agent/support/config-keys.ts': { yaml: ['yaml'] },
  'hardening/load-profile.ts': { yaml: ['yaml'] },
  // The versions a support bundle reports: in the bundle, the package.json it was built with.
  'agent/support/collect-agent.ts': {
    'azure-iot-device/package.json': ['azure-iot-device/package.json'],
    'azure-iot-device-mqtt/package.json': ['azure-iot-device-mqtt/package.json'],
    'azure-iot-common/package.json': ['azure-iot-common/package.json'],
    'azure-iot-provisioning-device/package.json': ['azure-iot-provisioning-device/package.json'],
    'azure-iot-provisioning-device-http/package.json': ['azure-iot-provisioning-device-http/package.json'],
    'azure-iot-security-tpm/package.json': ['azure-iot-security-tpm/package.json'],
    'tss.js/package.json': ['tss.js/package.json'],
  },
} as const satisfies Record<string, Record<string, readonly [string, ...string[]]>>;

type Copies = typeof MODULE_COPIES;
/** The name of a module copy, as its loader asks for it. */
export type ModuleCopy = { [Loader in keyof Copies]: keyof Copies[Loader] }[keyof Copies];
