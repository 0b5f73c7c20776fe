import path from 'node:path';
import { startDps, type Dps, type DpsBehaviour } from './dps/dps.js';
import { FileUploads } from './files/file-uploads.js';
import { startStorage, type LocalStorage } from './files/storage.js';
import type { AllocationPolicy } from './dps/enrollment.js';
import type { HubBehaviour } from './hub/hub-core.js';
import { startHub, type LocalHub } from './hub/hub.js';
import type { Port8883 } from './hub/silent-listener.js';
import { ensureServerCredentials } from './tls.js';

/**
 * The whole local cloud: one DPS and its linked hubs, each on a loopback address of its own
 * (so each keeps Azure's fixed ports 443 and 8883), all with certificates from one private
 * CA in `<dir>/tls`, and all state under `dir`.
 */
export interface CloudOptions {
  dir: string;
  dpsAddress?: string;
  /** One address per linked hub; the first is the default hub. */
  hubAddresses?: string[];
  allocation?: AllocationPolicy;
  /** Keep the ID scope across restarts (it is kept in `dir` anyway once chosen). */
  idScope?: string;
  retryAfterSeconds?: number;
  /**
   * DNS names for DPS and for each hub (in the order of hubAddresses). Certificates then
   * name them, SNI is required as on Azure, and DPS assigns hubs by name; clients must
   * resolve the names (test/support/hosts.ts). Without them everything is reached by address.
   */
  hostNames?: { dps: string; hubs: string[] };
  /** Limits and knobs of every hub. */
  hub?: HubBehaviour;
  /** 8883 of every hub as the device's network leaves it: open (default), closed or silent; WebSockets on 443 either way. */
  port8883?: Port8883;
  /** Knobs of DPS. */
  dps?: DpsBehaviour;
  log?: (line: string) => void;
  /** Blob storage (Azurite) for device file uploads, on the first hub's address. */
  storage?: boolean | { port?: number };
}

/** What QA, the demo and tests need to reach the cloud: the first line `npm run cloud` prints. */
export interface CloudDescription {
  idScope: string;
  provisioningHost: string;
  hubHost: string;
  caCertPath: string;
  provisioningServiceConnectionString: string;
  hubServiceConnectionString: string;
  adminUrl: string;
  linkedHubs: { host: string; serviceConnectionString: string; adminUrl: string }[];
  /** Where device file uploads land (Azurite), when the cloud runs with storage. */
  storage?: { blobEndpoint: string; container: string };
}

export interface LocalCloud {
  readonly dps: Dps;
  readonly hubs: LocalHub[];
  readonly ca: string;
  readonly caCertPath: string;
  readonly storage: LocalStorage | undefined;
  /** The hubs' file upload endpoints and the notifications they queued. */
  readonly files: FileUploads | undefined;
  describe(): CloudDescription;
  stop(): Promise<void>;
}

export const DEFAULT_DPS_ADDRESS = '127.0.77.1';
export const DEFAULT_HUB_ADDRESSES = ['127.0.77.2', '127.0.77.3'];

export async function startCloud(options: CloudOptions): Promise<LocalCloud> {
  const dpsAddress = options.dpsAddress ?? DEFAULT_DPS_ADDRESS;
  const hubAddresses = options.hubAddresses ?? DEFAULT_HUB_ADDRESSES;
  const tlsDir = path.join(options.dir, 'tls');
  const names = options.hostNames;
  if (names && names.hubs.length !== hubAddresses.length) throw new Error('hostNames.hubs needs one name per hub address');
  const tls = await ensureServerCredentials(tlsDir, [...(names ? [names.dps, ...names.hubs] : []), dpsAddress, ...hubAddresses]);
  const hubs: LocalHub[] = [];
  let storage: LocalStorage | undefined;
  try {
    if (options.storage) {
      const port = typeof options.storage === 'object' ? options.storage.port : undefined;
      storage = await startStorage({ address: hubAddresses[0]!, port, dir: path.join(options.dir, 'storage'), tls });
    }
    const files = storage ? new FileUploads(storage) : undefined;
    for (const [i, address] of hubAddresses.entries()) {
      hubs.push(await startHub({
        address, hostName: names?.hubs[i], stateDir: path.join(options.dir, `hub-${i + 1}`), tls, behaviour: options.hub, log: options.log, files,
        ...(options.port8883 ? { port8883: options.port8883 } : {}),
      }));
    }
    const dps = await startDps({
      address: dpsAddress, hostName: names?.dps, stateDir: options.dir, linkedHubs: hubs, tls, behaviour: options.dps,
      allocation: options.allocation, idScope: options.idScope, retryAfterSeconds: options.retryAfterSeconds,
    });
    const adminUrl = (hub: LocalHub) => `https://${hub.hostName}:${hub.httpsPort}/admin`;
    return {
      dps,
      hubs,
      ca: tls.ca,
      caCertPath: tls.caCertPath,
      storage,
      files,
      describe: () => ({
        idScope: dps.idScope,
        provisioningHost: dps.host,
        hubHost: hubs[0]!.hostName,
        caCertPath: tls.caCertPath,
        provisioningServiceConnectionString: dps.serviceConnectionString,
        hubServiceConnectionString: hubs[0]!.serviceConnectionString,
        adminUrl: adminUrl(hubs[0]!),
        linkedHubs: hubs.map((h) => ({ host: h.hostName, serviceConnectionString: h.serviceConnectionString, adminUrl: adminUrl(h) })),
        ...(storage ? { storage: { blobEndpoint: storage.blobEndpoint, container: storage.container } } : {}),
      }),
      stop: async () => {
        await dps.stop();
        await Promise.all(hubs.map((h) => h.stop()));
        await storage?.stop();
      },
    };
  } catch (err) {
    await Promise.all(hubs.map((h) => h.stop().catch(() => undefined)));
    await storage?.stop();
    throw err;
  }
}
