import type { BootedContainer, ExecResult } from './container.js';

/**
 * The agent user against the root side, on the booted board: every way it might make a
 * root unit run its code or act on its data, each tried for real. An attempt is `refused`
 * when it had no effect: the write, the systemctl call or the unit's run failed, and the
 * marker the planted code would write as root does not exist.
 */
export interface Attempt {
  what: string;
  refused: boolean;
  outcome: string;
}

const PWNED = '/var/lib/iot-agent-hardening/PWNED';
const REQUEST = '/run/iot-agent/harden-request.json';
/** Code the agent user plants: as root it leaves PWNED behind (the unit may write its state directory). */
const EVIL = `require('fs').writeFileSync('${PWNED}', 'uid ' + process.getuid()); console.log('PWNED');\n`;
const DENIED = /Permission denied|Operation not permitted|Read-only file system/;
const POLKIT_REFUSED = /Access denied|Interactive authentication required|not authorized|Invalid unit name|is not valid|not found|already loaded|Failed to (start|stop|restart|reload|kill|set|enqueue|freeze|clean|isolate|enable|disable|mask|unmask|link|reset|reexecute|preset|revert|import|create|daemon|edit)/i;

export async function redTeam(board: BootedContainer, endpoints: { hub: string; dps: string }): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  const asAgent = (...argv: string[]) => board.exec(['runuser', '-u', 'iot-agent', '--', ...argv], { timeoutMs: 120_000 });
  const sh = (script: string) => asAgent('sh', '-c', script);
  const pwned = async () => (await board.exec(['test', '-e', PWNED])).code === 0;
  const record = async (what: string, result: ExecResult, refusedBy: (r: ExecResult) => boolean) => {
    const planted = await pwned();
    const refused = refusedBy(result) && !planted;
    const said = (result.stderr || result.stdout).trim().split('\n').find(Boolean) ?? '';
    attempts.push({ what, refused, outcome: `${planted ? 'PLANTED CODE RAN AS ROOT; ' : ''}exit ${result.code}: ${said.slice(0, 160)}` });
  };
  const writeDenied = (r: ExecResult) => r.code !== 0 && DENIED.test(r.stderr);
  const polkitRefused = (r: ExecResult) => r.code !== 0 && (POLKIT_REFUSED.test(r.stderr) || DENIED.test(r.stderr));
  let requestId = '';
  const request = (fields: Record<string, unknown> = {}) => {
    requestId = `red-team-${attempts.length}`;
    return JSON.stringify({ version: 1, requestId, profile: 'strict', confirmTimeoutSeconds: 20, confirmTargets: [endpoints.hub, endpoints.dps], ...fields });
  };
  /**
   * Starts the apply unit for `profile` as the agent user after `prepare`. Refused when the
   * unit really ran (a new invocation, or the outcome of this request recorded: the start
   * limit is reset first, so it is never what refuses) and failed, or ran as asked, and
   * nothing of the attacker's ran as root.
   */
  const viaApplyUnit = async (what: string, prepare: string, profile = 'strict', ranIsOk = false) => {
    const unit = `iot-agent-harden-apply@${profile}.service`;
    await board.exec(['rm', '-f', PWNED]);
    await board.exec(['systemctl', 'reset-failed', unit]);
    const before = (await board.show(unit, ['InvocationID'])).InvocationID;
    await sh(`rm -f ${REQUEST}; ${prepare}`);
    const started = Date.now();
    const r = await asAgent('systemctl', '--no-ask-password', 'start', unit);
    const invocation = (await board.show(unit, ['InvocationID'])).InvocationID;
    // A oneshot that succeeded is unloaded at once (no InvocationID left); its outcome record says it ran.
    const outcome = (await board.exec(['cat', '/var/lib/iot-agent-hardening/last-apply.json'])).stdout;
    const answered = requestId !== '' && outcome.includes(`"requestId": "${requestId}"`);
    requestId = '';
    const ran = (invocation !== '' && invocation !== before) || answered;
    const log = !ran ? '' : (await board.exec(['journalctl', ...(answered ? ['-u', unit, '-n', '20'] : [`_SYSTEMD_INVOCATION_ID=${invocation}`]), '-o', 'cat', '--no-pager'])).stdout;
    const said = log.split('\n').filter((l) => l.startsWith('iot-agent:') || /^(Profile|Applied profile) /.test(l)).pop() ?? (ran ? '(no output)' : 'the unit did not run');
    await record(`${what} (then: systemctl start ${unit})`, { ...r, stderr: `unit: ${said} [${Math.round((Date.now() - started) / 1000)} s]` },
      (x) => ran && (ranIsOk || x.code !== 0));
  };

  await sh(`printf %s "${EVIL.replaceAll('"', '\\"')}" > /var/lib/iot-agent/evil.cjs`);

  // 1. Environment, options and code for the root apply unit.
  await viaApplyUnit('environment file with NODE_OPTIONS=--require (what the unit used to read)',
    `printf 'NODE_OPTIONS=--require=/var/lib/iot-agent/evil.cjs\\nIOT_AGENT_CONFIRM_HOST=${endpoints.hub}\\nIOT_AGENT_CONFIRM_TIMEOUT=20\\n' > /run/iot-agent/harden-confirm.env;`
    + ` printf '%s' '${request()}' > ${REQUEST}`, 'strict', true);
  await viaApplyUnit('request with an extra NODE_OPTIONS key', `printf '%s' '${request({ NODE_OPTIONS: '--require=/var/lib/iot-agent/evil.cjs' })}' > ${REQUEST}`);
  await viaApplyUnit('request with an option as confirm target', `printf '%s' '${request({ confirmTargets: ['--require=/var/lib/iot-agent/evil.cjs'] })}' > ${REQUEST}`);
  await viaApplyUnit('request naming a profile path', `printf '%s' '${request({ profile: '../../var/lib/iot-agent/evil' })}' > ${REQUEST}`);
  await viaApplyUnit('request as a symlink to /etc/shadow', `ln -s /etc/shadow ${REQUEST}`);
  await viaApplyUnit('request as a FIFO (to hang the root unit)', `mkfifo ${REQUEST}`);
  await viaApplyUnit('request of 1 MiB', `head -c 1048576 /dev/zero | tr '\\0' ' ' > ${REQUEST}`);
  await viaApplyUnit('request hard-linked to a root file', `ln /run/xtables.lock ${REQUEST}`);
  await viaApplyUnit('node_modules planted in the agent\'s home and runtime directory (yaml, commander)',
    'for d in /var/lib/iot-agent /var/lib/iot-agent/.node_modules /run/iot-agent; do for m in yaml commander; do mkdir -p $d/node_modules/$m'
    + ` && cp /var/lib/iot-agent/evil.cjs $d/node_modules/$m/index.js; done; done; printf '%s' '${request()}' > ${REQUEST}`, 'strict', true);
  // Root (not the agent) fills the manager's environment: the unit must still clear what node reads.
  await board.ok(['systemctl', 'set-environment', 'NODE_OPTIONS=--require=/var/lib/iot-agent/evil.cjs', 'NODE_PATH=/var/lib/iot-agent/node_modules']);
  await viaApplyUnit('the service manager\'s environment holding NODE_OPTIONS and NODE_PATH', `printf '%s' '${request()}' > ${REQUEST}`, 'strict', true);
  await board.ok(['systemctl', 'unset-environment', 'NODE_OPTIONS', 'NODE_PATH']);
  await viaApplyUnit('a profile name polkit admits but no profile has', `printf '%s' '${request({ profile: 'nosuchprofile' })}' > ${REQUEST}`, 'nosuchprofile');

  // 2. Starting, stopping, restarting root units and template instances with crafted names.
  const instances = ['..', '\\x2e\\x2e', 'a-b', '\\x2dlead', 'x\\x2fetc\\x2fpasswd', '%2e%2e', 'strict.yaml', 'strict\\x20x', 'var-lib-iot\\x2dagent-evil',
    'a'.repeat(65), 'b'.repeat(200), 'strict\u0441', 'stri\u200bct', ''];
  for (const instance of instances) {
    const unit = `iot-agent-harden-apply@${instance}.service`;
    await record(`systemctl start ${JSON.stringify(unit).slice(0, 90)}`, await asAgent('systemctl', '--no-ask-password', 'start', unit), polkitRefused);
  }
  for (const unit of ['iot-agent-harden-apply@strict.socket', 'iot-agent-harden-apply@strict.timer', 'iot-agent-harden-apply@strict.path']) {
    await record(`systemctl start ${unit}`, await asAgent('systemctl', '--no-ask-password', 'start', unit), polkitRefused);
  }
  const rootUnits = ['iot-agent-hardening.service', 'iot-agent-hardening-guard.service', 'iot-agent-harden-apply@strict.service', 'iot-agent.service'];
  for (const unit of rootUnits) {
    for (const verb of ['stop', 'restart', 'reload-or-restart', 'try-restart', 'kill', 'reset-failed', 'freeze', 'clean', 'enable', 'disable', 'mask', 'revert']) {
      await record(`systemctl ${verb} ${unit}`, await asAgent('systemctl', '--no-ask-password', verb, unit), polkitRefused);
    }
  }
  for (const unit of ['iot-agent-hardening.service', 'iot-agent-hardening-guard.service']) {
    await record(`systemctl start ${unit}`, await asAgent('systemctl', '--no-ask-password', 'start', unit), polkitRefused);
  }
  await record('systemctl isolate iot-agent-harden-apply@strict.service', await asAgent('systemctl', '--no-ask-password', 'isolate', 'iot-agent-harden-apply@strict.service'), polkitRefused);

  // 3. systemctl verbs that change units or the manager.
  const verbs: string[][] = [
    ['set-property', 'iot-agent-harden-apply@strict.service', 'Environment=NODE_OPTIONS=--require=/var/lib/iot-agent/evil.cjs'],
    ['set-property', 'iot-agent-hardening.service', 'ExecStart=/var/lib/iot-agent/evil.sh'],
    ['set-environment', 'NODE_OPTIONS=--require=/var/lib/iot-agent/evil.cjs'],
    ['import-environment', 'PATH'],
    ['daemon-reload'], ['daemon-reexec'],
    ['link', '/var/lib/iot-agent/evil.service'],
    ['enable', '/var/lib/iot-agent/evil.service'],
    ['preset', 'iot-agent-hardening.service'],
  ];
  await sh('printf "[Service]\\nExecStart=/bin/sh -c id\\n" > /var/lib/iot-agent/evil.service; printf "#!/bin/sh\\nid\\n" > /var/lib/iot-agent/evil.sh');
  for (const argv of verbs) {
    await record(`systemctl ${argv.join(' ').slice(0, 100)}`, await asAgent('systemctl', '--no-ask-password', ...argv), polkitRefused);
  }
  for (const argv of [
    ['--unit=iot-agent-harden-apply@x.service', '/bin/sh', '-c', `id > ${PWNED}`],
    ['--uid=0', '/bin/sh', '-c', `id > ${PWNED}`],
    ['-p', 'User=root', '/bin/sh', '-c', `id > ${PWNED}`],
    ['--scope', '--uid=0', '/bin/true'],
  ]) {
    await record(`systemd-run ${argv.join(' ')}`, await asAgent('systemd-run', '--no-ask-password', ...argv), polkitRefused);
  }
  // Power actions are only asked of polkit (through root's pkcheck with the details systemd passes), never performed.
  const sleeper = (await board.ok(['sh', '-c', 'runuser -u iot-agent -- sleep 120 >/dev/null 2>&1 & echo $!'])).trim();
  // The agent user's sleep, never runuser itself (root: polkit would rightly say yes); it may take a moment to appear.
  const pid = (await board.ok(['sh', '-c',
    `for i in $(seq 100); do p=$(pgrep -u iot-agent -P ${sleeper} sleep) && { echo "$p"; exit 0; }; sleep 0.1; done; exit 1`])).trim().split('\n')[0]!;
  const ask = (action: string, details: string[] = []) => board.exec(['pkcheck', '--action-id', action, '--process', pid, ...details]);
  for (const action of ['org.freedesktop.login1.power-off', 'org.freedesktop.login1.halt', 'org.freedesktop.login1.suspend', 'org.freedesktop.systemd1.reload-daemon',
    'org.freedesktop.systemd1.set-environment', 'org.freedesktop.systemd1.manage-unit-files', 'org.freedesktop.policykit.exec']) {
    await record(`polkit ${action}`, await ask(action), (r) => r.code !== 0);
  }
  for (const unit of ['poweroff.target', 'halt.target', 'kexec.target', 'rescue.target', 'emergency.target', 'ctrl-alt-del.target']) {
    await record(`polkit start ${unit}`, await ask('org.freedesktop.systemd1.manage-units', ['--detail', 'unit', unit, '--detail', 'verb', 'start']), (r) => r.code !== 0);
  }
  await board.exec(['kill', sleeper]);

  // 4. Writing what root reads or owns: records, profiles, config, code, unit drop-ins.
  const targets = [
    '/var/lib/iot-agent-hardening/applied.json', '/var/lib/iot-agent-hardening/known-good.json', '/var/lib/iot-agent-hardening/pending.json',
    '/var/lib/iot-agent-hardening/snapshot.json', '/var/lib/iot-agent-hardening/originals.json', '/var/lib/iot-agent-hardening/lock',
    '/etc/iot-agent/profiles/strict.yaml', '/etc/iot-agent/profiles/evil.yaml', '/etc/iot-agent/config.yaml',
    '/usr/bin/iot-agent', '/usr/lib/iot-agent/dist/agent/cli.js', '/usr/lib/iot-agent/package.json',
    '/etc/systemd/system/iot-agent-harden-apply@.service.d/evil.conf', '/run/systemd/system/iot-agent-harden-apply@.service.d/evil.conf',
    '/run/systemd/system/iot-agent-hardening.service', '/etc/sysctl.d/99-evil.conf', '/etc/udev/rules.d/99-evil.rules',
    '/usr/share/polkit-1/rules.d/99-evil.rules', '/etc/polkit-1/rules.d/99-evil.rules', '/run/xtables.lock',
  ];
  for (const file of targets) {
    await record(`write ${file}`, await sh(`mkdir -p "$(dirname ${file})" && printf x >> ${file}`), writeDenied);
  }
  await record('delete /var/lib/iot-agent-hardening/applied.json', await asAgent('rm', '-f', '/var/lib/iot-agent-hardening/applied.json'), writeDenied);
  await record('rename /var/lib/iot-agent-hardening/known-good.json', await asAgent('mv', '/var/lib/iot-agent-hardening/known-good.json', '/var/lib/iot-agent-hardening/x'), writeDenied);
  await record('read /var/lib/iot-agent-hardening/snapshot.json (other software\'s rules)', await asAgent('cat', '/var/lib/iot-agent-hardening/snapshot.json'), writeDenied);
  return attempts;
}
