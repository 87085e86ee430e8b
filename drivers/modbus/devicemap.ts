/**
 * Device maps: JSON files (config/devices/*.json) that say which registers of a device hold
 * which values. This room defines the format: the published JSON Schema and the rules a schema
 * cannot express (deviceMapProblems). They are configuration, so the agent reads and checks them
 * like the configuration (agent/config/formats.ts): the schema first (ajv, allErrors, strict),
 * then these rules, every problem reported with the JSON path of the key at fault
 * (`/points/3/address`) and the file.
 *
 * The semantic rules exist because a bad map does not fail loudly in the field, it publishes
 * wrong numbers: two points of one kind sharing registers (a typo in an address), a point no
 * single read can fetch (more than 125 registers), a point past the end of the 16-bit address
 * space, two points with one name (readings would overwrite each other), a scaleFactor naming
 * no int16 point of the map (the value could never be scaled), a string without its length,
 * a length that contradicts the type, a coil or discrete input that is not bool, and scaling on
 * a bool or string. The semantic pass runs when the schema passes, so it can trust the shape.
 */
import { MAX_READ_REGISTERS } from './frame.js';
import { registerCount } from './decode.js';
import type { DeviceMap, PointDef } from './types.js';

/** One problem in a device map, by JSON path. */
export interface FormatProblem {
  path: string;
  message: string;
}

export const DATA_TYPES = ['int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64', 'string', 'bool'] as const;
export const REGISTER_KINDS = ['holding', 'input', 'coil', 'discrete'] as const;
const pointName = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' };

/** The published schema of a device map (types.ts DeviceMap). */
export const deviceMapSchema = {
  $id: 'https://holdfast.invalid/schema/device-map.json',
  title: 'Holdfast device map',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'points'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$', description: 'map name' },
    description: { type: 'string', maxLength: 1000 },
    coalesceGap: { type: 'integer', minimum: 0, maximum: 100, description: 'unmapped registers a coalesced read may bridge (default 0)' },
    points: {
      type: 'array',
      minItems: 1,
      maxItems: 10000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'kind', 'address', 'type'],
        properties: {
          name: { ...pointName, description: 'point name, unique in the map' },
          kind: { enum: [...REGISTER_KINDS], description: 'holding (03), input (04), coil (01), discrete (02)' },
          address: { type: 'integer', minimum: 0, maximum: 65535, description: '0-based protocol address (register 40001 is holding 0)' },
          type: { enum: [...DATA_TYPES] },
          length: { type: 'integer', minimum: 1, description: 'registers of a string (2 characters each)' },
          wordOrder: { enum: ['big', 'little'], description: 'big: most significant word first (default)' },
          byteOrder: { enum: ['big', 'little'], description: 'big: most significant byte of a register first (default)' },
          scale: { type: 'number', not: { const: 0 }, description: 'value = raw * scale * 10^sf + offset' },
          offset: { type: 'number' },
          scaleFactor: { ...pointName, description: 'name of the int16 point holding a SunSpec scale factor' },
          unit: { type: 'string', minLength: 1, maxLength: 16 },
          notImplemented: { enum: ['sunspec'], description: 'the SunSpec not-implemented value reads as no value' },
          pollMs: { type: 'integer', minimum: 10, maximum: 86400000, description: 'own poll period' },
        },
      },
    },
  },
} as const;

const isBit = (p: PointDef) => p.kind === 'coil' || p.kind === 'discrete';
const span = (p: PointDef) => (isBit(p) ? 1 : registerCount(p));
const range = (p: PointDef) => (span(p) > 1 ? `${p.address}..${p.address + span(p) - 1}` : `${p.address}`);

/** What the schema cannot say (the map has passed the schema). */
export function deviceMapProblems(map: DeviceMap): FormatProblem[] {
  const problems: FormatProblem[] = [];
  const at = (i: number, key?: keyof PointDef) => `/points/${i}${key ? `/${key}` : ''}`;
  const names = new Map<string, number>();
  map.points.forEach((p, i) => {
    const first = names.get(p.name);
    if (first !== undefined) problems.push({ path: at(i, 'name'), message: `duplicate point name ${JSON.stringify(p.name)} (also ${at(first)})` });
    else names.set(p.name, i);

    if (isBit(p) && p.type !== 'bool') problems.push({ path: at(i, 'type'), message: `a ${p.kind} is one bit: type must be "bool"` });
    if (p.type === 'string' && p.length === undefined) problems.push({ path: at(i, 'length'), message: 'is required for type "string" (registers, 2 characters each)' });
    if (p.type !== 'string' && p.length !== undefined && p.length !== registerCount({ type: p.type })) {
      problems.push({ path: at(i, 'length'), message: `${p.type} is ${registerCount({ type: p.type })} register(s); omit length or make it match` });
    }
    if (p.type === 'string' && p.length !== undefined && p.length > MAX_READ_REGISTERS) {
      problems.push({ path: at(i, 'length'), message: `point ${JSON.stringify(p.name)} is ${p.length} registers, more than one read can fetch (${MAX_READ_REGISTERS})` });
    }
    if (p.address + span(p) > 0x10000) {
      problems.push({ path: at(i, 'address'), message: `point ${JSON.stringify(p.name)} runs past the end of the address space (${p.address} + ${span(p)} > 65536)` });
    }
    if (p.type === 'bool' || p.type === 'string') {
      for (const k of ['scale', 'offset', 'scaleFactor'] as const) if (p[k] !== undefined) problems.push({ path: at(i, k), message: `not allowed on type "${p.type}"` });
    }
  });

  // scale factors: an int16 point of this map, not the point itself
  map.points.forEach((p, i) => {
    if (p.scaleFactor === undefined || p.type === 'bool' || p.type === 'string') return;
    const j = names.get(p.scaleFactor);
    if (j === undefined) problems.push({ path: at(i, 'scaleFactor'), message: `names no point of this map: ${JSON.stringify(p.scaleFactor)}` });
    else if (j === i) problems.push({ path: at(i, 'scaleFactor'), message: 'a point cannot be its own scale factor' });
    else if (map.points[j].type !== 'int16') problems.push({ path: at(i, 'scaleFactor'), message: `${JSON.stringify(p.scaleFactor)} (${at(j)}) is ${map.points[j].type}; a scale factor is an int16` });
  });

  // overlapping ranges within a kind: sweep in address order against the furthest-reaching point
  for (const kind of REGISTER_KINDS) {
    const idx = map.points.map((_, i) => i).filter((i) => map.points[i].kind === kind);
    idx.sort((a, b) => map.points[a].address - map.points[b].address || a - b);
    let reach = -1;
    for (const i of idx) {
      const p = map.points[i];
      if (reach >= 0) {
        const q = map.points[reach];
        if (p.address < q.address + span(q)) {
          problems.push({
            path: at(i, 'address'),
            message: `${kind} ${range(p)} of ${JSON.stringify(p.name)} overlaps ${JSON.stringify(q.name)} (${at(reach)}, ${kind} ${range(q)})`,
          });
        }
      }
      if (reach < 0 || p.address + span(p) > map.points[reach].address + span(map.points[reach])) reach = i;
    }
  }
  return problems;
}
