/**
 * pm2 creates its stdout/stderr files 0644 in a 0755 directory (its umask), and a start-up
 * failure's details land there. Under pm2 (its env names the files), `run` makes them 0640 and
 * their directory 0750 when it owns them, first thing, before a config is even read.
 */
import { chmodSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { LOG_DIR_MODE, LOG_FILE_MODE } from '../log.js';

/** Files and directories changed (for the test); a failure leaves the file as it is, never stops the start. */
export function privatePm2Logs(env: NodeJS.ProcessEnv = process.env): string[] {
  const changed: string[] = [];
  const files = [env.pm_out_log_path, env.pm_err_log_path].filter((f): f is string => !!f && f !== '/dev/null');
  const tighten = (path: string, mode: number) => {
    try {
      const st = statSync(path);
      if (st.uid !== process.getuid?.() || (st.mode & 0o777 & ~mode) === 0) return;
      chmodSync(path, st.mode & 0o777 & mode);
      changed.push(path);
    } catch {
      /* not there (yet) or not ours: pm2 or the installer decides */
    }
  };
  for (const f of files) tighten(f, LOG_FILE_MODE);
  for (const d of new Set(files.map((f) => dirname(f)))) tighten(d, LOG_DIR_MODE);
  return changed;
}
