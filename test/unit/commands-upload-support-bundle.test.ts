import { describe, expect, it } from 'vitest';
import type { CommandContext, SupportAccess } from '../../agent/commands/command.js';
import { CommandRegistry } from '../../agent/commands/registry.js';
import { Logger } from '../../agent/log/logger.js';
import { stringContaining, stringMatching } from '../support/matchers.js';

function context(support: SupportAccess): CommandContext {
  return {
    log: new Logger({ write: () => undefined }),
    agentVersion: '9.9.9',
    identity: () => ({ state: 'ready' }),
    requestReprovision: () => Promise.resolve(),
    requestRestart: () => undefined,
    reboot: { schedule: () => ({ delaySeconds: 5, done: new Promise<void>(() => undefined) }), pending: () => false },
    telemetry: { intervalSeconds: () => 60, setIntervalSeconds: () => undefined },
    hardening: { apply: () => Promise.reject(new Error('not used here')), status: () => Promise.reject(new Error('not used here')) },
    attestation: {
      key: () => Promise.reject(new Error('not used here')),
      activate: () => Promise.reject(new Error('not used here')),
      quote: () => Promise.reject(new Error('not used here')),
    },
    systemInfo: () => Promise.resolve({}),
    support,
  };
}

describe('uploadSupportBundle', () => {
  it('answers 202 with the blob name at once, then the upload\'s result as the final outcome', async () => {
    let asked: { sinceSeconds: number; blobName: string } | undefined;
    let finish!: () => void;
    const registry = new CommandRegistry(context({
      buildAndUpload: async (request) => {
        asked = request;
        await new Promise<void>((resolve) => { finish = resolve; });
        return { blobName: request.blobName, bytes: 5000, collectors: { tpm: 'ok', journal: 'unavailable' } };
      },
    }));
    const { reply, final } = await registry.execute('uploadSupportBundle', { since: '2h' }, { via: 'method' });
    expect(reply).toMatchObject({ status: 202, payload: { accepted: true, since: '2h' } });
    const blobName = (reply.payload as { blobName: string }).blobName;
    expect(blobName).toMatch(/^iot-agent-support-.+-\d{8}T\d{6}Z\.tar\.gz$/);
    expect(asked).toMatchObject({ sinceSeconds: 7200, blobName });
    finish();
    expect(await final).toEqual({
      status: 200,
      payload: { message: `uploaded ${blobName} (5 KiB)`, blobName, bytes: 5000, collectors: { tpm: 'ok', journal: 'unavailable' } },
    });
  });

  it('takes 24 hours of journal when no since is given', async () => {
    let seconds = 0;
    const registry = new CommandRegistry(context({ buildAndUpload: (r) => { seconds = r.sinceSeconds; return Promise.resolve({ blobName: r.blobName, bytes: 1, collectors: {} }); } }));
    await (await registry.execute('uploadSupportBundle', null, { via: 'method' })).final;
    expect(seconds).toBe(86_400);
  });

  it.each([
    [{ since: 'yesterday' }, 'since', /expected a duration/],
    [{ since: 24 }, 'since', /expected a duration/],
    [{ lines: 5 }, 'lines', /unknown argument/],
  ])('refuses %j with 400 naming the field', async (args, field, reason) => {
    const reply = await new CommandRegistry(context({ buildAndUpload: () => Promise.reject(new Error('not reached')) }))
      .dispatch('uploadSupportBundle', args, { via: 'method' });
    expect(reply.status).toBe(400);
    expect(reply.payload).toMatchObject({ field, reason: stringMatching(reason) });
  });

  it('refuses a duration beyond 31 days with 400', async () => {
    const reply = await new CommandRegistry(context({ buildAndUpload: () => Promise.reject(new Error('not reached')) }))
      .dispatch('uploadSupportBundle', { since: '40d' }, { via: 'method' });
    expect(reply).toMatchObject({ status: 400, payload: { message: 'duration "40d" is out of range' } });
  });

  it('refuses a second bundle while one is being built, and takes one again afterwards', async () => {
    let finish!: () => void;
    const registry = new CommandRegistry(context({
      buildAndUpload: async (r) => { await new Promise<void>((resolve) => { finish = resolve; }); return { blobName: r.blobName, bytes: 1, collectors: {} }; },
    }));
    const first = await registry.execute('uploadSupportBundle', {}, { via: 'method' });
    const second = await registry.dispatch('uploadSupportBundle', {}, { via: 'method' });
    expect(second).toMatchObject({ status: 409, payload: { message: stringContaining('being built and uploaded already') } });
    expect((await registry.dispatch('ping', {}, { via: 'method' })).status).toBe(200); // not exclusive: other commands go on
    finish();
    await first.final;
    const third = await registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect(third.reply.status).toBe(202);
    finish();
    await third.final;
  });

  it('reports a failed upload as 500 without the SAS the storage error quoted', async () => {
    const registry = new CommandRegistry(context({
      buildAndUpload: () => Promise.reject(new Error('PUT https://acct.blob.core.windows.net/c/d/b.tar.gz?sv=2021-12-02&sig=c2VjcmV0c2lnbmF0dXJl&se=x failed: 403')),
    }));
    const outcome = await (await registry.execute('uploadSupportBundle', {}, { via: 'method' })).final;
    expect(outcome.status).toBe(500);
    const message = (outcome.payload as { message: string }).message;
    expect(message).toMatch(/^support bundle not uploaded: PUT https:\/\/acct/);
    expect(message).not.toContain('c2VjcmV0c2lnbmF0dXJl');
    expect(message).toContain('sig=[redacted]');
  });
});
