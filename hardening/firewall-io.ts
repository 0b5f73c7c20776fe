import { AgentError, describeError } from '../agent/lib/errors.js';
import { restoreCommand, saveCommand, type Backend } from './backend.js';
import { agentLines } from './drift.js';
import type { Family, FirewallRules } from './render-firewall.js';
import { applyText, parseFilterTable, removeText, revertText } from './restore-text.js';
import type { CommandRunner } from '../agent/lib/exec.js';

/**
 * The firewall through `iptables-save` and `iptables-restore --noflush` (and their IPv6
 * twins): reading the filter table, loading restore text atomically, and the ways back.
 */
export class FirewallIo {
  constructor(private readonly runner: CommandRunner, readonly backend: Backend) {}

  async save(family: Family): Promise<string> {
    return (await this.runner.run(saveCommand(this.backend, family))).stdout;
  }

  /** The save output, or null when the tool fails and the caller can do without (IPv6 not in the kernel). */
  async trySave(family: Family, needed: boolean): Promise<string | null> {
    try {
      return await this.save(family);
    } catch (err) {
      if (needed) throw err;
      return null;
    }
  }

  async agentLinesOrNull(family: Family): Promise<string[] | null> {
    const saved = await this.trySave(family, false);
    return saved === null ? null : agentLines(parseFilterTable(saved));
  }

  async restore(family: Family, text: string, test: boolean): Promise<void> {
    try {
      await this.runner.run(restoreCommand(this.backend, family, test), { input: text });
    } catch (err) {
      throw new AgentError(`${label(family)} rules were ${test ? 'rejected by --test' : 'not loaded'}`, {
        cause: err, hint: 'run `iot-agent harden plan` to see the rule text; is the kernel missing an xtables match (conntrack, hashlimit, comment)?',
      });
    }
  }

  /**
   * Brings the agent's chains and jumps back to `previous` (a save taken before a change).
   * Never gives up while there is a way back: when that restore fails, the known good
   * profile's rules are loaded instead; when that fails too (or there is none), the agent's
   * chains and jumps are removed, as before the agent ever touched the firewall.
   */
  async revert(previous: Record<Family, string | null>, knownGood: Record<Family, FirewallRules | undefined> | null, notes: string[]): Promise<void> {
    for (const family of [4, 6] as const) {
      const before = previous[family];
      if (before === null) continue;
      const live = parseFilterTable(await this.save(family));
      const text = revertText(parseFilterTable(before), live);
      if (!text) continue;
      try {
        await this.restore(family, text, false);
        continue;
      } catch (err) {
        notes.push(`${label(family)}: the state before the change could not be restored (${oneLineError(err)})`);
      }
      const good = knownGood?.[family];
      if (good) {
        try {
          await this.restore(family, applyText(good, live), false);
          notes.push(`${label(family)}: loaded the last known good profile's rules instead`);
          continue;
        } catch (err) {
          notes.push(`${label(family)}: the last known good profile's rules could not be loaded either (${oneLineError(err)})`);
        }
      }
      await this.restore(family, removeText(parseFilterTable(await this.save(family))), false);
      notes.push(`${label(family)}: removed the agent's chains and jumps (the firewall as before the agent)`);
    }
  }

  /** Loads `rules` into the agent's chains with one restore per family, jumps inserted where missing. */
  async load(family: Family, rules: FirewallRules): Promise<void> {
    const saved = await this.trySave(family, false);
    await this.restore(family, applyText(rules, saved === null ? undefined : parseFilterTable(saved)), false);
  }
}

/** An error for a note: one line. */
export function oneLineError(err: unknown): string {
  return describeError(err).replace(/\s*\n\s*/g, ' ');
}

export function label(family: Family): string {
  return family === 4 ? 'iptables' : 'ip6tables';
}
