/**
 * `holdfast run`: start the engine on a validated config and stop it in order on SIGTERM/SIGINT.
 * pm2 sends SIGINT then SIGKILL after kill_timeout: the last group commit happens first.
 */
import { createLogger } from '../log.js';
import { Engine } from '../engine.js';
import { loadDrivers } from '../uplinks.js';
import type { Config } from '../config/types.js';

export async function runAgent(cfg: Config): Promise<void> {
  const log = createLogger(cfg.logFile, cfg.logLevel);
  let engine: Engine;
  try {
    await loadDrivers(cfg);
    engine = new Engine(cfg, log);
  } catch (e) {
    log.fatal({ err: e, code: (e as { code?: string }).code }, 'cannot start');
    log.flush();
    throw e;
  }
  try {
    await engine.start();
  } catch (e) {
    // e.g. the HTTP port is taken: stop what started, say why, exit non-zero.
    log.fatal({ err: e, code: (e as { code?: string }).code }, 'cannot start');
    await engine.stop();
    log.flush();
    throw e;
  }
  if (cfg.logFile !== '-') console.log(`holdfast running (gateway ${cfg.gatewayId}); log: ${cfg.logFile}; data: ${cfg.dataDir}`);
  const shutdown = (sig: string) => {
    log.info({ signal: sig }, 'shutting down');
    engine.stop().then(
      () => {
        log.flush();
        process.exit(0);
      },
      (e: unknown) => {
        log.error({ err: e }, 'shutdown failed');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
