/**
 * pm2 process file: `pm2 start ecosystem.config.cjs` (then `pm2 save` and `pm2 startup`).
 * It is .cjs because the package is an ES module package and pm2 loads this file with require().
 */
module.exports = {
  apps: [
    {
      name: 'holdfast',
      script: 'dist/agent/cli/main.js',
      args: 'run',
      cwd: __dirname,
      env: { HOLDFAST_CONFIG: process.env.HOLDFAST_CONFIG || '/etc/holdfast/holdfast.json', NODE_ENV: 'production' },
      // SIGINT first: the agent commits its last group and says goodbye on the status topic.
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
