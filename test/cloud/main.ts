/**
 * `npm run --silent cloud -- --dir DIR [--dps-address A] [--hub-address A]...`: the local
 * cloud for QA and the demo. The first line on stdout is one JSON object saying how to
 * reach it (see CloudDescription); logs go to stderr; SIGTERM or SIGINT stop it, exit 0.
 * The default addresses stay the same across restarts, so devices provisioned before a
 * restart find their hub again.
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_DPS_ADDRESS, DEFAULT_HUB_ADDRESSES, startCloud } from './cloud.js';
import { parseBehaviour } from './hub/admin-api.js';

const usage = 'usage: npm run --silent cloud -- --dir DIR [--dps-address 127.x.y.z] [--hub-address 127.x.y.z]... [--allocation hashed|static]'
  + ' [--hub-behaviour JSON] [--disabled-enrollment status|unauthorized] [--port-8883 open|closed|silent]';

function fail(message: string): never {
  process.stderr.write(`cloud: ${message}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      dir: { type: 'string' },
      'dps-address': { type: 'string' },
      'hub-address': { type: 'string', multiple: true },
      allocation: { type: 'string' },
      'hub-behaviour': { type: 'string' },
      'disabled-enrollment': { type: 'string' },
      'port-8883': { type: 'string' },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (!values.dir) fail('--dir is required');
const loopback = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
for (const address of [values['dps-address'], ...(values['hub-address'] ?? [])]) {
  if (address !== undefined && !loopback.test(address)) fail(`${address} is not a loopback address (127.0.0.0/8)`);
}
if (values.allocation !== undefined && values.allocation !== 'hashed' && values.allocation !== 'static') fail('--allocation is hashed or static');
const disabledEnrollment = values['disabled-enrollment'];
if (disabledEnrollment !== undefined && disabledEnrollment !== 'status' && disabledEnrollment !== 'unauthorized') fail('--disabled-enrollment is status or unauthorized');
const port8883 = values['port-8883'];
if (port8883 !== undefined && port8883 !== 'open' && port8883 !== 'closed' && port8883 !== 'silent') fail('--port-8883 is open, closed or silent');
let hubBehaviour;
try {
  hubBehaviour = values['hub-behaviour'] === undefined ? undefined : parseBehaviour(JSON.parse(values['hub-behaviour']));
} catch (err) {
  fail(`--hub-behaviour: ${(err as Error).message} (e.g. {"perSecond": 100, "backlog": 50, "dailyQuota": 8000})`);
}

mkdirSync(values.dir, { recursive: true, mode: 0o700 });
try {
  const cloud = await startCloud({
    dir: values.dir,
    dpsAddress: values['dps-address'] ?? DEFAULT_DPS_ADDRESS,
    hubAddresses: values['hub-address'] ?? DEFAULT_HUB_ADDRESSES,
    allocation: values.allocation,
    // Blob storage for device file uploads (support bundles): Azurite beside the first hub.
    storage: true,
    hub: hubBehaviour,
    ...(port8883 ? { port8883 } : {}),
    dps: disabledEnrollment === undefined ? undefined : { disabledEnrollment },
    log: (line) => process.stderr.write(`[hub] ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(cloud.describe())}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    cloud.stop().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`cloud: stop failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  const hint = e.code === 'EACCES' ? ' (ports 443 and 8883 need root or CAP_NET_BIND_SERVICE)'
    : e.code === 'EADDRINUSE' ? ' (another cloud runs there: stop it or choose other addresses)' : '';
  process.stderr.write(`cloud: cannot start: ${e.message}${hint}\n`);
  process.exit(1);
}
