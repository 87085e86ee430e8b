/**
 * pm2 process file: `pm2 start ecosystem.config.cjs` (then `pm2 save` and `pm2 startup`).
 * It is .cjs because the package is an ES module package and pm2 loads this file with require().
 *
 * This is how production starts the agent, memory settings included:
 *   --max-semi-space-size=2  V8's young generation grows to 16 MB semi-spaces under a busy ingest
 *                            and keeps them (~30 MB of RSS); 2 MB semi-spaces cost a few more,
 *                            cheap scavenges (measured: no loss in ingest or drain rate).
 *   MALLOC_ARENA_MAX=1       glibc gives every thread (main, libuv pool, V8's helpers) its own malloc
 *                            arena, each keeping freed memory. Two arenas kept ~5 MB less than the
 *                            default, but one run in four or five still kept 7-9 MB more after the
 *                            same feed (RSS 117-123 MB against 112-115); one arena: 111.5-114.9 MB
 *                            in 12 runs, with ingest and drain rates unchanged (npm run bench).
 * `npm run bench` starts its RSS child (scripts/bench/rss.ts) with node_args and env from this
 * file, so figure 4 is the agent's RSS as pm2 runs it. Any other launcher (a systemd unit,
 * `holdfast run` by hand, scripts/demo.sh) should pass the same:
 *   MALLOC_ARENA_MAX=1 NODE_OPTIONS=--max-semi-space-size=2 holdfast run --config ...
 */
module.exports = {
  apps: [
    {
      name: 'holdfast',
      script: 'dist/agent/cli/main.js',
      args: 'run',
      cwd: __dirname,
      node_args: ['--max-semi-space-size=2'],
      env: { HOLDFAST_CONFIG: process.env.HOLDFAST_CONFIG || '/etc/holdfast/holdfast.json', NODE_ENV: 'production', MALLOC_ARENA_MAX: '1' },
      // SIGINT first: the agent commits its last group, says goodbye on the status topic and
      // closes its store within shutdownTimeoutMs (default 7 s), which must stay below this.
      kill_timeout: 10000,
      // A crash loop backs off exponentially (pm2 caps it at 15 s) instead of restarting every 100 ms.
      exp_backoff_restart_delay: 500,
      max_memory_restart: '250M',
      autorestart: true,
      // The agent writes its own pino log (logFile); pm2 only keeps stdout/stderr of start-up failures.
      out_file: '/var/log/recovery/pm2-out.log',
      error_file: '/var/log/recovery/pm2-error.log',
      time: true,
    },
  ],
};
