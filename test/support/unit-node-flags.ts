/**
 * The node flags systemd/iot-agent.service gives the daemon, read from the unit's text so
 * that tests and benchmarks cannot drift from it: NODE_OPTIONS (the V8 settings node takes
 * there), then the flags on ExecStart's node command line before the script (those node
 * refuses in NODE_OPTIONS, such as --lite-mode). An ExecStart that is not node adds none.
 */
export interface UnitNodeFlags {
  nodeOptions: string[];
  execStart: string[];
}

export function unitNodeFlags(unitText: string): UnitNodeFlags {
  const environment = /^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(unitText);
  const exec = /^ExecStart=(.*)$/m.exec(unitText);
  const argv = exec ? exec[1]!.trim().split(/\s+/) : [];
  const execStart: string[] = [];
  if (argv[0] !== undefined && /(^|\/)node$/.test(argv[0])) {
    for (const word of argv.slice(1)) {
      if (!word.startsWith('--')) break;
      execStart.push(word);
    }
  }
  return { nodeOptions: environment ? environment[1]!.split(/\s+/).filter(Boolean) : [], execStart };
}

/** All of them, in the order node sees them. */
export function allUnitNodeFlags(unitText: string): string[] {
  const { nodeOptions, execStart } = unitNodeFlags(unitText);
  return [...nodeOptions, ...execStart];
}
