import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { Logger } from '../../agent/log/logger.js';
import { PROVISION_STEPS, registerAssignment } from '../../agent/provisioning/flow.js';
import { readAssignment } from '../../agent/state/assignment-store.js';
import { systemInfoInChild } from '../../agent/telemetry/system-info-process.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { freePort } from '../support/ports.js';
import { stringMatching } from '../support/matchers.js';

// Both start a helper program from dist/ (npm run build), as the daemon does.

const config = (): AgentConfig => ({ ...structuredClone(DEFAULTS), provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0001' } });
const absentTpm = async () => new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));

describe('the provisioning helper without a TPM', () => {
  it('caches nothing when the registration fails, and logs no step', async () => {
    const tpm = await absentTpm();
    const stateDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-flow-'));
    const events: string[] = [];
    try {
      await expect(registerAssignment({
        tpm, config: { ...config(), stateDir, provisioning: { ...config().provisioning, globalEndpoint: '127.0.0.1' } }, idScope: '0ne0001', registrationId: 'r',
        ca: undefined, current: undefined, log: new Logger({ journal: false, write: (line) => events.push(line) }),
      })).rejects.toMatchObject({ message: stringMatching(/^TPM failed during registration with DPS 127\.0\.0\.1/) });
      expect(await readAssignment(stateDir)).toEqual({ status: 'absent' });
      expect(events.filter((line) => PROVISION_STEPS.some((step) => line.includes(`event=provisioning.${step} `) || line.endsWith(`event=provisioning.${step}\n`)))).toEqual([]);
    } finally {
      await tpm.close();
    }
  });
});

describe('getSystemInfo through its helper process', () => {
  it('adds the daemon\'s own figures to the facts the helper gathered', async () => {
    const info = await systemInfoInChild();
    expect(Object.keys(info)).toEqual(['os', 'cpu', 'load', 'memory', 'disks', 'network', 'uptimeSeconds', 'temperatureC', 'agent']);
    const agent = info.agent as Record<string, number>;
    expect(agent.pid).toBe(process.pid);
    expect(agent.rssBytes).toBeGreaterThan(0);
    expect(agent.heapUsedBytes).toBeGreaterThan(0);
  });
});
