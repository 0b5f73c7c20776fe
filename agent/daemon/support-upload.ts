import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client } from 'azure-iot-device';
import { CommandFailure, type SupportAccess } from '../commands/command.js';
import type { AgentConfig } from '../config.js';
import { uploadThroughHub } from '../hub/file-upload.js';
import type { BundleResult } from '../support/bundle.js';

export interface SupportUploadHooks {
  config: AgentConfig;
  /** The connected SDK client, if any. */
  client(): Client | undefined;
  /** Builds a bundle in `outputDir` with the daemon's own sources. */
  build(since: Date, outputDir: string, now: Date): Promise<BundleResult>;
}

/**
 * `uploadSupportBundle`'s work: the bundle goes into a private temporary directory, up
 * through the hub's file upload, and the local copy is removed whatever happens: a board's
 * disk does not fill with bundles nobody fetches.
 */
export function supportUpload(hooks: SupportUploadHooks): SupportAccess {
  return {
    buildAndUpload: async ({ sinceSeconds, now, blobName }) => {
      if (!hooks.client()) throw new CommandFailure(503, 'not connected to the hub: nothing to upload through');
      const dir = await mkdtemp(path.join(os.tmpdir(), 'iot-agent-upload-'));
      try {
        const bundle = await hooks.build(new Date(now.getTime() - sinceSeconds * 1000), dir, now);
        const client = hooks.client();
        if (!client) throw new CommandFailure(503, 'the hub connection dropped while the bundle was built; ask again');
        const ca = hooks.config.tls.extraCaFile ? await readFile(hooks.config.tls.extraCaFile, 'utf8') : undefined;
        await uploadThroughHub(client, blobName, bundle.path, ca);
        return {
          blobName, bytes: bundle.bytes,
          collectors: Object.fromEntries(bundle.manifest.collectors.map((c) => [c.name, c.status])),
        };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
