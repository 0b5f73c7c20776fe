/**
 * The short-lived process that answers getSystemInfo for the daemon (started by
 * systemInfoInChild, never by hand): systeminformation loads here and leaves with it.
 */
import { jsonObject, onlyKeys } from '../child/child-message.js';
import { serveChild } from '../child/serve-child.js';
import { readSystemInfo } from './system-info.js';

serveChild('the system information process', async (request) => {
  onlyKeys(jsonObject(request, 'the request'), [], 'the request');
  return readSystemInfo();
});
