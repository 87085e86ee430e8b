/**
 * Prints the error-code reference (docs/errors.md) from the catalogue (agent/error-catalogue.ts),
 * so the reference cannot drift from the codes: test/errors.test.ts compares them.
 *   node dist/scripts/errors-doc.js > docs/errors.md
 */
import { CLASSES, CODES, classesOf, type CatalogCode, type CodeClass } from '../agent/errors.js';
import { runIfMain } from './run-main.js';

/** A markdown table cell: a `|` would end the cell early. */
const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function errorsReference(): string {
  const classes = (Object.entries(CLASSES) as [CodeClass, string][]).map(([c, text]) => `- \`${c}\`: ${cell(text)}`);
  const rows = (Object.keys(CODES) as CatalogCode[]).map((code) => {
    const { meaning, action } = CODES[code];
    return `| \`${code}\` | ${classesOf(code).join(' or ')} | ${cell(meaning)} | ${cell(action)} |`;
  });
  return [
    '# Error codes',
    '',
    'Every failure Holdfast reports carries a stable code, the same wherever it appears: in the log (the `code` field),',
    'in `holdfast status`, in the database (`recovery_tasks.last_error_code`, `recovery_events.code`) and in MQTT fault',
    'events (`<prefix>/faults`).',
    '',
    'Codes with `NN` or `NNN` are families whose instances carry a number from the wire: `MQTT_0x87` (an MQTT 5 reason',
    'code in hex), `HTTP_503`, `MODBUS_EXCEPTION_02` (hex), `GRPC_STATUS_17` (a gRPC status this build has no name for).',
    'Each named gRPC status (`GRPC_UNAVAILABLE`, ...) is a code of its own.',
    '',
    'A failure of an uplink has a scope, *payload* (this one batch is at fault) or *link* (the upstream or the path to it',
    'is), and a kind, *soft* (retried) or *hard* (no retry can fix it). Other codes say where the fault is: on the field',
    'side (physical, device, network, config), on the gateway (local, config, cli) or in one delivery task (task). Two classes',
    '("link/soft or network") mean the case decides: a socket error is link/soft from an uplink and network from a',
    'Modbus TCP connection; the meaning says how for the others.',
    '',
    ...classes,
    '',
    'Generated from agent/error-catalogue.ts: `node dist/scripts/errors-doc.js > docs/errors.md` regenerates it, and a test fails when it is stale.',
    '',
    '| code | class | meaning | what to do |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

runIfMain(import.meta.url, () => new Promise<void>((resolve) => process.stdout.write(errorsReference(), () => resolve())));
