/**
 * `holdfast run`: start the engine on a validated config and stop it in order on SIGTERM/SIGINT.
 * pm2 sends SIGINT then SIGKILL after kill_timeout: the stop is bounded by shutdownTimeoutMs,
 * below it (agent/shutdown.ts), so the last group commit and the store's close always happen.
 * Once the store is open and recovered and the API listens, it tells pm2 (`wait_ready`) it is
 * ready; SIGHUP reopens the log file (logrotate), never stops the agent. The engine is owned
 * by a supervisor (agent/remote/supervisor.ts) that can switch it for a signed remote config.
 */
import { openLog } from '../log.js';
import type { Config } from '../config/types.js';
import { exitAfterFlush } from '../shutdown.js';
import { Supervisor } from '../remote/supervisor.js';
import { RemoteChannel } from '../remote/channel.js';

/** `configFile`: the local file, the base a remote config is merged onto (without it, remote config is off). */
export async function runAgent(cfg: Config, configFile?: string): Promise<void> {
  const { log, reopen } = openLog(cfg.logFile, cfg.logLevel);
  process.on('SIGHUP', () => {
    try {
      if (reopen()) log.info({ signal: 'SIGHUP', logFile: cfg.logFile }, 'log file reopened');
      else log.info({ signal: 'SIGHUP' }, 'SIGHUP: logging to stdout, nothing to reopen');
    } catch (err) {
      log.error({ err, signal: 'SIGHUP', logFile: cfg.logFile }, 'log file not reopened');
    }
  });
  // A signal during the start (pm2 or systemd stopping a starting agent) is kept and acted on
  // once the engine is up, so the stop is the ordered one, not the signal's default.
  let onSignal: (sig: string) => void = (sig) => (early ??= sig);
  let early: string | null = null;
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  let channel: RemoteChannel | null = null;
  let sup: Supervisor;
  try {
    sup = new Supervisor(cfg, configFile, log, (e) => channel?.attach(e), (e) => {
      log.fatal({ err: e, code: 'REMOTE_ROLLED_BACK' }, 'cannot run any config: exiting for the supervisor to restart with the last known good');
      shutdown('rollback failed', 1);
    });
    if (cfg.remote && configFile) channel = new RemoteChannel(sup, cfg.remote, cfg);
  } catch (e) {
    log.fatal({ err: e, code: (e as { code?: string }).code }, 'cannot start');
    log.flush();
    throw e;
  }
  try {
    await sup.start((g) => channel?.reverify(g) ?? 'no remote channel (no config file)');
  } catch (e) {
    // e.g. the HTTP port is taken: stop what started, say why, exit non-zero.
    log.fatal({ err: e, code: (e as { code?: string }).code }, 'cannot start');
    // The engine may not even have been built (a driver failed to load).
    await (sup.engine as typeof sup.engine | undefined)?.stop();
    log.flush();
    throw e;
  }
  channel?.publishState();
  // pm2 (wait_ready) starts counting the app as online only now, with the store open.
  process.send?.('ready');
  if (cfg.logFile !== '-') console.log(`holdfast running (gateway ${cfg.gatewayId}); log: ${cfg.logFile}; data: ${cfg.dataDir}`);
  let stopping = false;
  const shutdown = (sig: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    const timeoutMs = cfg.shutdownTimeoutMs;
    log.info({ signal: sig, timeoutMs }, 'shutting down');
    // The backstop: every step of the stop has its own bound, so this fires only if one escaped it.
    const backstop = setTimeout(() => {
      log.error({ code: 'SHUTDOWN_TIMEOUT', timeoutMs }, 'the stop did not finish within shutdownTimeoutMs: closing the store and exiting');
      try {
        sup.engine.closeStore();
      } catch (err) {
        log.error({ err, code: 'STORE_UNAVAILABLE' }, 'store not closed');
      }
      exitAfterFlush(log, 1);
    }, timeoutMs);
    sup.stop(timeoutMs).then(
      () => {
        clearTimeout(backstop);
        exitAfterFlush(log, code);
      },
      (e: unknown) => {
        clearTimeout(backstop);
        log.error({ err: e }, 'shutdown failed');
        exitAfterFlush(log, 1);
      },
    );
  };
  onSignal = (sig) => shutdown(sig);
  if (early) shutdown(early);
  // Backstops for what escaped every owner (agent/guard.ts), in a library's callback most likely.
  // A stray rejection is reported and the agent goes on; an uncaught exception may have left a
  // driver half-way, so the agent stops in order (the store closed) and exits 1 for pm2 to restart.
  process.on('unhandledRejection', (e) => sup.engine.guard.report('process.rejection', e));
  process.on('uncaughtException', (e) => {
    sup.engine.guard.report('process.exception', e);
    shutdown('uncaughtException', 1);
  });
}

