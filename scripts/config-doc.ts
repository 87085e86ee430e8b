/**
 * Prints the configuration reference (docs/configuration.md) from the published JSON Schema, so
 * the reference cannot drift from what the validator enforces: test/docs.test.ts compares them.
 *   node dist/scripts/config-doc.js > docs/configuration.md
 */
import { configSchema } from '../agent/config/schema.js';

interface Node {
  type?: string;
  enum?: readonly unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  properties?: Record<string, Node>;
  items?: Node;
  oneOf?: readonly Node[];
  required?: readonly string[];
}

function typeOf(n: Node): string {
  if (n.const !== undefined) return `\`${JSON.stringify(n.const)}\``;
  if (n.enum) return n.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  const range = [
    n.minimum !== undefined ? `>= ${n.minimum}` : n.exclusiveMinimum !== undefined ? `> ${n.exclusiveMinimum}` : '',
    n.maximum !== undefined ? `<= ${n.maximum}` : '',
  ].filter(Boolean).join(', ');
  return `${n.type ?? 'any'}${range ? ` (${range})` : ''}`;
}

export function configReference(): string {
  const rows: string[] = [];
  const walk = (n: Node, path: string, required: boolean) => {
    if (path && n.type !== 'object' && !(n.type === 'array' && (n.items?.properties || n.items?.oneOf))) {
      const def = n.default === undefined ? (required ? '**required**' : '') : `\`${JSON.stringify(n.default)}\``;
      rows.push(`| \`${path}\` | ${typeOf(n)} | ${def} | ${(n.description ?? '').replace(/\|/g, '\\|')} |`);
    }
    if (n.properties) for (const [k, v] of Object.entries(n.properties)) if (k !== '$schema') walk(v, path ? `${path}.${k}` : k, n.required?.includes(k) ?? false);
    if (n.type === 'array' && n.items?.properties && !n.items.oneOf) {
      rows.push(`| \`${path}\` | array | ${n.default === undefined ? '**required**' : `\`${JSON.stringify(n.default)}\``} | ${n.description ?? 'list of objects:'} |`);
      walk(n.items, `${path}[]`, false);
    }
    if (n.type === 'array' && n.items?.oneOf) {
      // A list of objects of several kinds, told apart by `type`: one block of rows per kind.
      rows.push(`| \`${path}\` | array | ${n.default === undefined ? '**required**' : `\`${JSON.stringify(n.default)}\``} | ${n.description ?? ''}; each item one of the kinds below, by \`type\` |`);
      for (const v of n.items.oneOf) walk(v, `${path}[type=${JSON.stringify(v.properties?.type?.const)}]`, false);
    }
  };
  walk(configSchema as unknown as Node, '', true);
  return [
    '# Configuration reference',
    '',
    'Generated from the JSON Schema that the validator compiles (`holdfast config schema`);',
    '`node dist/scripts/config-doc.js > docs/configuration.md` regenerates it, and a test fails when it is stale.',
    'Unknown keys are refused. Relative paths are resolved against the config file\'s folder.',
    'Environment overrides: `HOLDFAST_DATA_DIR` (dataDir), `RETRY_STRATEGY` (every uplink\'s retry.strategy, unless a remote config sets it), `HOLDFAST_CONFIG` (which file).',
    '',
    '| key | type | default | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1]?.endsWith('config-doc.js')) process.stdout.write(configReference());
