import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { HubDeviceRegistration, LinkedHub } from '../test/cloud/contracts.js';
import { buildActivationBlob } from '../test/cloud/dps/activation-blob.js';
import { startDps } from '../test/cloud/dps/dps.js';
import {
  dpsRequest, operationStatus, registrationSas, requestChallenge, sendRegistration, type DpsTarget,
} from '../test/cloud/dps/software-device.js';
import { SoftwareTpm } from '../test/cloud/dps/software-tpm.js';
import { checkSas, parseSas } from '../test/cloud/sas.js';
import { randomLoopbackAddress } from '../test/support/ports.js';

/**
 * The local DPS's own work per registration (challenge blob, SAS check, assignment with
 * the final blob), with simulated devices whose keys are in software. The devices run in
 * a worker thread so the TPM-side RSA decryptions do not share the DPS's event loop; the
 * DPS's capacity is its rate divided by how busy its event loop was. Target: 100/s.
 * Baselines in the same run: the bare HTTPS request rate of the same server (a
 * registration is three requests), and the blob + SAS crypto alone.
 */
const DEVICES = 8;
const REGISTRATIONS_PER_DEVICE = 100;
const TARGET_PER_SECOND = 100;

interface WorkerInput { host: string; idScope: string; ca: string }
type ToWorker = { kind: 'go' } | { kind: 'floor'; requests: number };
type FromWorker =
  | { kind: 'ready'; endorsementKeys: string[] }
  | { kind: 'done'; registrations: number; elapsedMs: number; finalBlobsChecked: number }
  | { kind: 'floor'; requests: number; elapsedMs: number };

export async function run(): Promise<void> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'bench-cloud-dps-'));
  const hub = new CountingHub('bench-hub.cloud.test');
  const dps = await startDps({ address: randomLoopbackAddress(), stateDir, linkedHubs: [hub], retryAfterSeconds: 0 });
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { host: dps.host, idScope: dps.idScope, ca: dps.ca } satisfies WorkerInput });
  const next = () => new Promise<FromWorker>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  try {
    const ready = await next();
    if (ready.kind !== 'ready') throw new Error('device worker did not start');
    ready.endorsementKeys.forEach((endorsementKey, d) => {
      for (let i = 0; i < REGISTRATIONS_PER_DEVICE; i++) {
        dps.enroll({ registrationId: `bench-${d}-${i}`, attestation: { type: 'tpm', tpm: { endorsementKey } } });
      }
    });

    worker.postMessage({ kind: 'floor', requests: 1500 } satisfies ToWorker);
    const floor = await next();
    if (floor.kind !== 'floor') throw new Error('unexpected worker message');
    const requestRate = floor.requests / (floor.elapsedMs / 1000);

    const before = performance.eventLoopUtilization();
    worker.postMessage({ kind: 'go' } satisfies ToWorker);
    const done = await next();
    const busy = performance.eventLoopUtilization(before).utilization;
    if (done.kind !== 'done') throw new Error('unexpected worker message');
    if (hub.count !== done.registrations) throw new Error(`hub saw ${hub.count} registrations, devices completed ${done.registrations}`);

    const rate = done.registrations / (done.elapsedMs / 1000);
    const crypto = cryptoOnlyRate();
    const figures = {
      registrations: done.registrations,
      registrationsPerSecond: round(rate),
      dpsEventLoopBusy: round(busy),
      dpsCapacityPerSecond: round(rate / busy),
      targetPerSecond: TARGET_PER_SECOND,
      capacityVsTarget: round(rate / busy / TARGET_PER_SECOND),
      httpsRequestsPerSecond: round(requestRate),
      registrationVsRequestFloor: round(rate / (requestRate / 3)),
      cryptoOnlyRegistrationsPerSecond: round(crypto),
      finalBlobsActivatedAndChecked: done.finalBlobsChecked,
    };
    process.stdout.write(`${done.registrations} registrations by ${DEVICES} software-TPM devices over HTTPS (keep-alive), DPS in this thread, devices in a worker\n`);
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await worker.terminate();
    await dps.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Per registration the DPS builds two blobs and checks one SAS token (plus one per poll). */
function cryptoOnlyRate(): number {
  const tpm = SoftwareTpm.create();
  const key = Buffer.alloc(32, 1);
  const sas = parseSas(`SharedAccessSignature sr=scope%2Fregistrations%2Fid&sig=${encodeURIComponent(Buffer.alloc(32).toString('base64'))}&se=9999999999&skn=registration`);
  const rounds = 300;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) {
    buildActivationBlob(tpm.endorsementKey, tpm.storageRootKey, key);
    buildActivationBlob(tpm.endorsementKey, tpm.storageRootKey, key);
    checkSas(sas, key);
    checkSas(sas, key);
  }
  return rounds / ((performance.now() - started) / 1000);
}

class CountingHub implements LinkedHub {
  count = 0;
  readonly keys = new Map<string, Buffer>();
  constructor(readonly hostName: string) {}
  registerDevice(registration: HubDeviceRegistration): Promise<void> {
    this.count++;
    this.keys.set(registration.registrationId, registration.primaryKey);
    return Promise.resolve();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The device side, in the worker: one flow at a time per software TPM, all TPMs concurrently. */
function deviceWorker(input: WorkerInput): void {
  const port = parentPort!;
  const tpms = Array.from({ length: DEVICES }, () => SoftwareTpm.create());
  const agent = new https.Agent({ ca: input.ca, keepAlive: true, maxSockets: DEVICES });
  const target: DpsTarget = { host: input.host, idScope: input.idScope, agent };
  port.postMessage({ kind: 'ready', endorsementKeys: tpms.map((t) => t.endorsementKey.toString('base64')) } satisfies FromWorker);
  port.on('message', (message: ToWorker) => {
    if (message.kind === 'floor') void floor(target, message.requests).then((m) => port.postMessage(m));
    if (message.kind === 'go') void registerAll(target, tpms).then((m) => port.postMessage(m));
  });
}

async function floor(target: DpsTarget, requests: number): Promise<FromWorker> {
  const started = performance.now();
  await Promise.all(Array.from({ length: DEVICES }, async () => {
    for (let i = 0; i < requests / DEVICES; i++) await dpsRequest(target, 'GET', '/nothing-here');
  }));
  return { kind: 'floor', requests, elapsedMs: performance.now() - started };
}

async function registerAll(target: DpsTarget, tpms: SoftwareTpm[]): Promise<FromWorker> {
  let registrations = 0;
  let finalBlobsChecked = 0;
  const started = performance.now();
  await Promise.all(tpms.map(async (tpm, d) => {
    for (let i = 0; i < REGISTRATIONS_PER_DEVICE; i++) {
      const id = `bench-${d}-${i}`;
      const challenge = await requestChallenge(target, tpm, id);
      if (challenge.status !== 401) throw new Error(`challenge: ${challenge.status} ${challenge.text}`);
      const sas = registrationSas(tpm, target, id);
      let res = await sendRegistration(target, tpm, id, sas);
      for (let poll = 0; res.body?.status === 'assigning' && poll < 100; poll++) {
        res = await operationStatus(target, id, String(res.body.operationId), sas);
      }
      if (res.body?.status !== 'assigned') throw new Error(`registration ${id}: ${res.status} ${res.text}`);
      // The final blob is the device's work, not the DPS's: prove the first of each device, skip the rest.
      if (i === 0) {
        const state = res.body.registrationState as { tpm: { authenticationKey: string } };
        tpm.activate(Buffer.from(state.tpm.authenticationKey, 'base64'));
        finalBlobsChecked++;
      }
      registrations++;
    }
  }));
  return { kind: 'done', registrations, elapsedMs: performance.now() - started, finalBlobsChecked };
}

if (!isMainThread && parentPort) deviceWorker(workerData as WorkerInput);
