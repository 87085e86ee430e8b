/** The docs stay true: the configuration reference is what the schema says, the README names every command. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReference } from '../scripts/config-doc.js';
import { COMMANDS } from '../agent/cli/commands.js';
import { ROOT } from './helpers/agent.js';

t.test('docs/configuration.md is generated from the schema and current', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  t.equal(doc, configReference(), 'regenerate with: node dist/scripts/config-doc.js > docs/configuration.md');
});

t.test('the README documents every CLI command', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  for (const c of COMMANDS) t.ok(readme.includes(`holdfast ${c.name}`), `README mentions holdfast ${c.name}`);
});
