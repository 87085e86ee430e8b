#!/usr/bin/env node
/**
 * `holdfast` command line. Each command has --help; errors print their stable code and exit
 * non-zero: 2 for usage, 78 (EX_CONFIG) for a refused config, 1 for anything else; a failed
 * `run` start with the status of exit-codes.ts.
 */
import { parseArgs } from 'node:util';
import { HoldfastError, isHoldfastError } from '../errors.js';
import { ConfigError } from '../config/load.js';
import { COMMANDS, type Command } from './commands.js';
import { EXIT, startExitCode } from './exit-codes.js';

const TOP = `holdfast — store-and-forward agent for industrial edge gateways

Usage: holdfast <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(16)} ${c.summary}`).join('\n')}

Every command takes --help. The config file comes from --config or HOLDFAST_CONFIG.
Environment: HOLDFAST_CONFIG, HOLDFAST_DATA_DIR (overrides dataDir), RETRY_STRATEGY (overrides every uplink's retry.strategy).`;

function help(c: Command): string {
  return `Usage: holdfast ${c.usage}\n\n${c.summary}\n\n${c.help}`.trimEnd();
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(TOP);
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    const { VERSION } = await import('../version.js');
    console.log(VERSION);
    return 0;
  }
  const two = `${argv[0]} ${argv[1] ?? ''}`;
  const cmd = COMMANDS.find((c) => c.name === two) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (!cmd) {
    console.error(`USAGE: unknown command ${JSON.stringify(argv.slice(0, 2).join(' '))}\n\n${TOP}`);
    return 2;
  }
  const rest = argv.slice(cmd.name.split(' ').length);
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    console.error(`USAGE: ${(e as Error).message}\n\n${help(cmd)}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(help(cmd));
    return 0;
  }
  try {
    return await cmd.run(parsed.values as Record<string, string | boolean | undefined>, parsed.positionals);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      return 78;
    }
    if (isHoldfastError(e, 'USAGE')) {
      console.error(`${e.message}\n\n${help(cmd)}`);
      return 2;
    }
    // A failed start exits with the status that says why (exit-codes.ts), for the supervisor.
    const status = cmd.name === 'run' ? startExitCode(e) : EXIT.FAILURE;
    console.error(e instanceof HoldfastError ? e.message : e);
    return status;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // `run` keeps the process alive itself; every other command ends here. Exit outright: pm2's
    // IPC channel (or a timer a failed start left) would otherwise keep a failed start alive.
    // stdout and stderr are synchronous on Linux for files, pipes and terminals: nothing is cut.
    if (code !== -1) process.exit(code);
  },
  (e: unknown) => {
    console.error(e);
    process.exit(EXIT.FAILURE);
  },
);
