/**
 * The short-lived process that registers with DPS for the daemon and `iot-agent provision`
 * (started by registerInChild, never by hand): serveRegistration behind the IPC channel.
 */
import { serveChild } from '../child/serve-child.js';
import { PROVISIONING_PROCESS } from './child-protocol.js';
import { serveRegistration } from './serve-registration.js';

serveChild(PROVISIONING_PROCESS, serveRegistration);
