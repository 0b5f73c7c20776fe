import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { enrollBoard, readBoardIdentity } from '../support/enroll-board.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { TinyProxy } from '../support/tinyproxy.js';
import { clientFor } from '../support/tpm.js';

/**
 * A board enrolled with the local cloud for the registration tests: its DPS on 443 of a
 * loopback address of the file's own (root), a hub, and a swtpm whose EK DPS knows. Started
 * by the first test that asks (one per test file), stopped after the file; DPS's faults are
 * cleared after each test. No TPM connection stays open: swtpm serves one at a time.
 */
export interface DpsBench {
  cloud: LocalCloud;
  swtpm: SwtpmInstance;
  registrationId: string;
  deviceId: string;
  /** What every registration of the board needs: where DPS is and the CA to trust it by. */
  target: { registrationId: string; idScope: string; globalEndpoint: string; ca: string };
}

let started: Promise<DpsBench> | undefined;
let dir: string | undefined;

export function dpsBench(): Promise<DpsBench> {
  started ??= (async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-dps-bench-'));
    const [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined }),
      SwtpmInstance.start(),
    ]);
    const tpm = clientFor(swtpm.transport);
    const identity = await readBoardIdentity(tpm).finally(() => tpm.close());
    const deviceId = 'board-7';
    await enrollBoard(cloud.dps, { deviceId, transport: swtpm.transport, hub: cloud.hubs[0]!.hostName, identity });
    const target = { registrationId: identity.registrationId, idScope: cloud.dps.idScope, globalEndpoint: cloud.dps.host, ca: cloud.ca };
    return { cloud, swtpm, registrationId: identity.registrationId, deviceId, target };
  })();
  return started;
}

afterEach(async () => {
  if (started) (await started).cloud.dps.faults.clear();
});

afterAll(async () => {
  const bench = started;
  started = undefined;
  if (bench) {
    const { cloud, swtpm } = await bench;
    await cloud.stop();
    await swtpm.stop();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `use` with the URL (credentials included) of a real proxy that requires them; what it returned and the CONNECTs the proxy saw. */
export async function throughProxy<T>(use: (url: string) => Promise<T>): Promise<{ result: T; connects: string[] }> {
  const proxyDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-dps-proxy-'));
  const user = { name: 'agent', password: 'secret' };
  const proxy = await TinyProxy.start({ dir: proxyDir, user });
  try {
    const result = await use(proxy.url(user));
    return { result, connects: proxy.connects() };
  } finally {
    proxy.stop();
    rmSync(proxyDir, { recursive: true, force: true });
  }
}
