import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HardenOptions } from '../../agent/cli/harden.js';
import { DEFAULT_STATE_DIR } from '../../hardening/engine.js';
import { Records } from '../../hardening/records.js';
import { scratchBoard } from '../support/scratch-board.js';
import { standInPrograms } from './stand-in-programs.js';

/**
 * A board for the root commands of `iot-agent harden` for real: real iptables and sysctl on
 * a scratch root, in a network namespace of the test's own that `--netns iotagent-cli`
 * reaches (a stand-in `ip` turns `ip netns exec iotagent-cli` into entering it; every other
 * `ip` is the real one). Without --tpm, a --root other than / measures nothing. The caller's
 * afterEach runs `cleanups` and restorePath().
 */
const NETNS = 'iotagent-cli';

export interface Board {
  options: HardenOptions;
  endpoints: (mode: Endpoints) => void;
  records: Records;
  run: (argv: string[]) => Promise<string>;
}

type Endpoints = 'real' | 'answering' | 'cut off by the rules';

/**
 * A scratch board; `endpoints(mode)` says how the confirm probes (a node script the engine
 * runs in the namespace) go from then on. `real`: they run. `answering`: the endpoints
 * beyond the board answer. `cut off by the rules`: they answer unless the agent's outbound
 * chain is loaded (a loopback endpoint would always answer: the profiles accept loopback).
 */
export async function hardenBoard(cleanups: (() => void)[]): Promise<Board> {
  const { root, ns } = await scratchBoard(cleanups);
  const enter = ns.prefix.join(' ');
  const mode = path.join(root, 'endpoints');
  const ok = `echo '{"ok":true,"detail":"TLS handshake completed (TLSv1.3)"}'`;
  const cutOff = `if { ${enter} iptables-nft-save; ${enter} iptables-legacy-save; } 2>/dev/null | grep -q IOT-AGENT-OUT; `
    + `then echo '{"ok":false,"detail":"ECONNREFUSED"}'; else ${ok}; fi`;
  const probe = `if [ "$1 $2" = "${process.execPath} -e" ] && [ -f ${mode} ]; then if grep -q answering ${mode}; then ${ok}; else ${cutOff}; fi; exit 0; fi; `;
  standInPrograms({ ip: `if [ "$1 $2 $3" = "netns exec ${NETNS}" ]; then shift 3; ${probe}exec ${enter} "$@"; fi; exec /usr/sbin/ip "$@"` });
  const config = path.join(root, 'config.yaml');
  writeFileSync(config, `stateDir: ${path.join(root, 'agent-state')}\nprovisioning:\n  globalEndpoint: dps.example\n`);
  return {
    options: { root, netns: NETNS, config }, records: new Records(path.join(root, DEFAULT_STATE_DIR)), run: (argv) => ns.run(argv),
    endpoints: (endpoints: Endpoints) => (endpoints === 'real' ? rmSync(mode, { force: true }) : writeFileSync(mode, endpoints)),
  };
}

/** The first 12 hex digits of the applied profile's hash, as the commands print it. */
export const hash12 = async (b: Board) => (await b.records.applied.read())!.hash.slice(0, 12);
