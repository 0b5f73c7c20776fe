import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../support/agent-process.js';
import { unpackBundle } from '../support/bundle-archive.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { stringContaining } from '../support/matchers.js';

describe('uploadSupportBundle: a bundle pulled from the cloud through IoT Hub file upload and Azurite', () => {
  let dc: DeviceCloud;
  let agent: AgentProcess;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-support', storage: true });
    agent = dc.startAgent();
    await agent.waitForState('ready');
  }, 90_000);
  afterAll(async () => {
    await dc?.stop();
  });

  it('answers 202 at once, uploads the bundle under the device id, notifies the hub, and reports the result in lastCommands', async () => {
    const t0 = Date.now();
    const answer = await dc.invoke('uploadSupportBundle', { since: '1h' });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(answer).toMatchObject({ status: 202, payload: { accepted: true, since: '1h' } });
    const blobName = answer.payload.blobName as string;
    expect(blobName).toMatch(/^iot-agent-support-.+-\d{8}T\d{6}Z\.tar\.gz$/);

    const final = await dc.waitFor('final uploadSupportBundle result in the twin', async () => {
      const last = ((await dc.reported()).lastCommands as Record<string, { phase: string; status: number; message: string }> | undefined)?.uploadSupportBundle;
      return last?.phase === 'final' ? last : undefined;
    }, 60_000);
    expect(final).toMatchObject({ status: 200, message: stringContaining(`uploaded ${blobName}`) });

    const stored = `board-support/${blobName}`;
    expect(await dc.cloud.storage!.listBlobs()).toContain(stored);
    const [notification] = dc.cloud.files!.notifications('board-support');
    expect(notification).toMatchObject({ blobName: stored, isSuccess: true, statusCode: 201 });

    const bytes = await dc.cloud.storage!.download(stored);
    expect(notification!.blobSizeInBytes).toBe(bytes.length);
    const bundle = await unpackBundle(bytes);
    expect(bundle.folder).toBe(blobName.replace(/\.tar\.gz$/, ''));
    expect(bundle.manifest).toMatchObject({ kind: 'iot-agent/support-bundle', builtBy: 'daemon', daemon: 'running' });
    expect(bundle.json('status.json')).toMatchObject({ daemon: 'running', state: 'ready', deviceId: 'board-support', hubProtocol: 'mqtt' });
    expect(bundle.collector('tpm').status).toBe('ok');
    expect(bundle.json<{ endorsementKey: { ok: boolean } }>('tpm.json').endorsementKey.ok).toBe(true);
    const checks = bundle.json<{ checks: { id: string; status: string; message: string }[] }>('check.json').checks;
    expect(checks.find((c) => c.id === 'tpm')).toMatchObject({ status: 'pass', message: stringContaining('via the running daemon') });
    expect(bundle.files.get('daemon-log.txt')).toContain('event=state.changed');
    expect(agent.lines.some((l) => l.includes('command.result') && l.includes('uploadSupportBundle') && l.includes('phase=final'))).toBe(true);
  }, 90_000);
});
