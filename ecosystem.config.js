/**
 * pm2 process file: `pm2 start ecosystem.config.js` (then `pm2 save` and `pm2 startup`;
 * scripts/install.sh does all three). The package is an ES module and pm2 loads this file with
 * require(): Node >= 20.19 loads an ES module that way, and pm2 reads its named export `apps`
 * (`export default` is not seen).
 *
 * Readiness: with wait_ready pm2 counts the app online only when it says `ready` (process.send),
 * which the agent does once its store is open and recovered and its API listens; listen_timeout
 * covers the recovery of a large store after a crash (salvage reads every segment).
 * Stop: SIGINT first; the agent commits its last group, says goodbye on the status topic and
 * closes its store within shutdownTimeoutMs (default 7 s), below kill_timeout.
 * A failed start exits with a status saying why (docs/operations.md): pm2 restarts it with an
 * exponential backoff (capped by pm2 at 15 s), so a fixed config is picked up without a hand.
 *
 * Memory settings (measured by `npm run bench`, which starts its RSS child with node_args and env
 * from this file):
 *   --max-semi-space-size=2  V8's young generation grows to 16 MB semi-spaces under a busy ingest
 *                            and keeps them (~30 MB of RSS); 2 MB semi-spaces cost a few more,
 *                            cheap scavenges (no loss in ingest or drain rate).
 *   MALLOC_ARENA_MAX=1       glibc gives every thread its own malloc arena, each keeping freed
 *                            memory; one arena: 111.5-114.9 MB in 12 runs against up to 123 MB,
 *                            with ingest and drain rates unchanged.
 * Any other launcher (the systemd unit, `holdfast run` by hand, scripts/demo.sh) passes the same.
 *
 * HOLDFAST_CONFIG and HOLDFAST_LOG_DIR, read when pm2 loads this file, point it elsewhere
 * (tests, a second instance); production uses /etc/holdfast and /var/log/recovery.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const logDir = process.env.HOLDFAST_LOG_DIR || '/var/log/recovery';

export const apps = [
  {
    name: 'holdfast',
    script: join(here, 'dist/agent/cli/main.js'),
    args: 'run',
    cwd: here,
    node_args: ['--max-semi-space-size=2'],
    env: { HOLDFAST_CONFIG: process.env.HOLDFAST_CONFIG || '/etc/holdfast/holdfast.json', NODE_ENV: 'production', MALLOC_ARENA_MAX: '1' },
    wait_ready: true,
    listen_timeout: 180000,
    kill_timeout: 10000,
    exp_backoff_restart_delay: 500,
    max_memory_restart: '250M',
    autorestart: true,
    // The agent writes its own pino log (logFile, reopened on SIGHUP); pm2 keeps stdout/stderr,
    // i.e. start-up failures. The agent makes both files 0640 when it starts.
    out_file: join(logDir, 'pm2-out.log'),
    error_file: join(logDir, 'pm2-error.log'),
    time: true,
  },
];
