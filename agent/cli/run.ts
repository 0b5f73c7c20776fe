import { loadConfig, requireIdScope } from '../config.js';
import { Daemon } from '../daemon/daemon.js';
import { ExitCode } from '../lib/errors.js';
import { loadRootStore } from '../lib/tls-context.js';
import { Logger } from '../log/logger.js';
import type { RuntimeOverrides } from '../runtime-overrides.js';
import { agentVersion } from '../version.js';

/** Hard limit for a clean stop: systemd's default is 90 s, technicians expect seconds. */
const STOP_DEADLINE_MS = 4_500;

/** `iot-agent run`: the daemon in the foreground, as systemd starts it. Resolves when it has stopped. */
export async function run(options: { config?: string }, overrides: RuntimeOverrides): Promise<number> {
  const config = await loadConfig(options.config);
  requireIdScope(config, options.config);
  const log = new Logger({ level: config.log.level });
  let stop: (signal: string, code?: ExitCode) => void = () => undefined;
  const daemon = new Daemon({
    config, configPath: options.config, log, agentVersion: agentVersion(), overrides,
    // Restart=on-failure in the unit: a non-zero exit after a clean stop brings up a fresh process.
    onRestartRequested: () => stop('restartAgent', ExitCode.restartRequested),
  });

  // The daemon must outlive any single fault: log it and carry on where that is safe.
  process.on('unhandledRejection', (err) => log.error('daemon.unhandled_rejection', { err }));
  process.on('uncaughtException', (err) => {
    log.error('daemon.uncaught_exception', { err, action: 'exiting so systemd restarts a clean process' });
    process.exit(ExitCode.internalError);
  });

  loadRootStore();
  await daemon.start();
  return new Promise<number>((resolve) => {
    let stopping = false;
    stop = (signal: string, code: ExitCode = ExitCode.ok) => {
      if (stopping) return;
      stopping = true;
      log.info('daemon.stopping', { signal });
      setTimeout(() => {
        log.warn('daemon.stop_timeout', { afterMs: STOP_DEADLINE_MS });
        resolve(code);
      }, STOP_DEADLINE_MS).unref();
      daemon.stop().then(() => resolve(code), (err: unknown) => {
        log.error('daemon.stop_failed', { err });
        resolve(ExitCode.failure);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void daemon.reload());
  });
}
