import type { Fleet } from './fleet.js';

/** What one scenario did and saw, for the drill's summary. */
export interface ScenarioResult {
  name: string;
  seconds: number;
  registrations: number;
  notes: string[];
}

export type ScenarioName = 'hub-restart' | 'dps-outage' | 'disabled' | 'hub-moved';
export const SCENARIOS: readonly ScenarioName[] = ['hub-restart', 'dps-outage', 'disabled', 'hub-moved'];

const everyoneReady = (fleet: Fleet) => (s: { connected: number }) => s.connected === fleet.boards.length;

async function measure(fleet: Fleet, name: string, body: (notes: string[]) => Promise<void>): Promise<ScenarioResult> {
  const t0 = Date.now();
  const registrations = fleet.cloud.dps.counters.registrations;
  const notes: string[] = [];
  await body(notes);
  return { name, seconds: (Date.now() - t0) / 1000, registrations: fleet.cloud.dps.counters.registrations - registrations, notes };
}

/** The hub goes down for `downMs` and comes back: every board returns, spread out, without DPS. */
export function hubRestart(fleet: Fleet, downMs = 5_000): Promise<ScenarioResult> {
  return measure(fleet, 'hub-restart', async (notes) => {
    await fleet.hub.stopMqtt();
    await new Promise((r) => setTimeout(r, downMs));
    await fleet.hub.startMqtt();
    notes.push(`all back ${(await fleet.waitUntil('all boards back', everyoneReady(fleet), 120_000)) / 1000} s after the hub returned`);
  });
}

/** Every board is asked to re-provision while DPS answers 503: each goes back to its hub and keeps it. */
export function dpsOutage(fleet: Fleet): Promise<ScenarioResult> {
  return measure(fleet, 'dps-outage', async (notes) => {
    fleet.cloud.dps.faults.failNext(1_000_000);
    try {
      const answers = await Promise.all(fleet.boards.map((b) => fleet.service.client.invokeDeviceMethod(b.deviceId,
        { methodName: 'reprovision', responseTimeoutInSeconds: 30 }).then((r) => (r.result as { status: number }).status, () => 0)));
      notes.push(`reprovision accepted by ${answers.filter((s) => s === 202).length}/${answers.length}`);
      await new Promise((r) => setTimeout(r, 5_000));
      notes.push(`all on their old hub ${(await fleet.waitUntil('all boards back on their hub', everyoneReady(fleet), 120_000)) / 1000} s later`);
    } finally {
      fleet.cloud.dps.faults.clear();
    }
  });
}

/** One board is refused by its hub (disabled): it knocks with backoff and goes to DPS at most once. */
export function disabled(fleet: Fleet, watchMs = 60_000): Promise<ScenarioResult> {
  return measure(fleet, 'disabled', async (notes) => {
    const board = fleet.boards[0]!;
    // The hub the board is on now (an earlier scenario may have moved it).
    const hub = fleet.cloud.hubs.find((h) => h.hostName === board.hub) ?? fleet.hub;
    const refused = hub.counters.refused;
    await hub.core.deleteDevice(board.deviceId, undefined);
    await new Promise((r) => setTimeout(r, watchMs));
    notes.push(`${board.deviceId}: ${hub.counters.refused - refused} refused connects in ${watchMs / 1000} s, state ${board.state}`);
  });
}

/** Every enrollment moves to the second hub and the first forgets the devices: the fleet follows through DPS. */
export function hubMoved(fleet: Fleet): Promise<ScenarioResult> {
  return measure(fleet, 'hub-moved', async (notes) => {
    const [from, to] = fleet.cloud.hubs;
    for (const board of fleet.boards) {
      const enrollment = fleet.cloud.dps.enrollment(board.registrationId)!;
      fleet.cloud.dps.enroll({ ...enrollment, iotHubs: [to!.hostName] });
      await from!.core.deleteDevice(board.deviceId, undefined).catch(() => undefined);
    }
    const ms = await fleet.waitUntil('all boards on the second hub', () => fleet.boards.every((b) => b.state === 'ready' && b.hub === to!.hostName), 300_000);
    notes.push(`all on ${to!.hostName} after ${ms / 1000} s`);
  });
}

export function runScenario(fleet: Fleet, name: ScenarioName): Promise<ScenarioResult> {
  switch (name) {
    case 'hub-restart': return hubRestart(fleet);
    case 'dps-outage': return dpsOutage(fleet);
    case 'disabled': return disabled(fleet);
    case 'hub-moved': return hubMoved(fleet);
  }
}
