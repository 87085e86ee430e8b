/**
 * What the CLI commands take alike: the configuration file (--config FILE, else
 * $HOLDFAST_CONFIG), loaded and validated, and the check that nothing else was named.
 */
import { HoldfastError } from '../errors.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';

export type Values = Record<string, string | boolean | undefined>;

export const configOpt = { config: { type: 'string', short: 'c' } } as const;
export const CONFIG_HELP = '  -c, --config FILE   configuration file (default: $HOLDFAST_CONFIG)';

/** The configuration file named by --config, else by $HOLDFAST_CONFIG. */
export function configPath(v: Values): string | undefined {
  return (v.config as string | undefined) ?? process.env.HOLDFAST_CONFIG;
}

/** The configuration, loaded and validated (ConfigError: exit 78); USAGE when none is named. */
export function configFrom(v: Values): Config {
  const file = configPath(v);
  if (!file) throw new HoldfastError('USAGE', 'no configuration: pass --config FILE or set HOLDFAST_CONFIG');
  return loadConfig(file);
}

export function noPositionals(p: string[]): void {
  if (p.length > 0) throw new HoldfastError('USAGE', `unexpected argument ${JSON.stringify(p[0])}`);
}
