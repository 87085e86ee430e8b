/**
 * `holdfast simulate modbus-tcp | modbus-rtu`: Modbus devices to poll when there is no plant at
 * hand (a demo, a soak test, a driver test against a pty pair).
 *
 * simulate() is the programmatic entry (tests call it in-process); simulateCommand is the CLI
 * command, in the shape of agent/cli/commands.ts's Command, registered in COMMANDS. It
 * prints one line saying where it listens and runs until SIGINT/SIGTERM (run returns -1, like
 * `holdfast run`), then prints the traffic counters.
 *
 * Units are "id:profile" pairs ("1:counter,2:meter,3:sunspec-inverter", default "1:counter");
 * each id gets its own device, so two meters drift independently. A fault script (faults.ts)
 * starts with the simulator. Refusals are USAGE errors naming the bad piece.
 */
import type { Command } from './commands.js';
import { HoldfastError } from '../errors.js';
import type { SimDevice } from '../../drivers/modbus/simulator/device.js';
import { FaultScriptError, loadFaultScript, runFaultScript, type FaultScriptRun, type FaultStep } from '../../drivers/modbus/simulator/faults.js';
import { PROFILES, createDevice, isProfile } from '../../drivers/modbus/simulator/profiles.js';
import { RtuSimulator, type Parity } from '../../drivers/modbus/simulator/rtu.js';
import { TcpSimulator } from '../../drivers/modbus/simulator/tcp.js';

export type SimulateMode = 'modbus-tcp' | 'modbus-rtu';

export interface SimulateArgs {
  mode: SimulateMode;
  host?: string;
  port?: number;
  serial?: string;
  /** An open descriptor for `serial` (programmatic use: the bench's pty master ends). */
  serialFd?: number;
  baud?: number;
  parity?: Parity;
  units?: string;
  faults?: string;
  /** Fake IIO `in_voltageN_raw` file that `busVolts` steps write. */
  adc?: string;
  adcDivider?: number;
  lineRate?: boolean;
  /** Gateway behaviour on TCP (0x0B for unknown units). */
  gateway?: boolean;
  /** Where the "listening" line and fault-script steps go (default console.log). */
  print?: (line: string) => void;
}

export interface Simulation {
  close(): Promise<void>;
  port?: number;
  devices: Map<number, SimDevice>;
  tcp?: TcpSimulator;
  rtu?: RtuSimulator;
}

const usage = (msg: string) => new HoldfastError('USAGE', msg);

/** "1:counter,2:meter" -> unit id -> a fresh device of that profile. */
export function parseUnits(spec: string, mode: SimulateMode): Map<number, SimDevice> {
  const devices = new Map<number, SimDevice>();
  const [lo, hi] = mode === 'modbus-rtu' ? [1, 247] : [0, 255];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+):([a-z-]+)$/.exec(part);
    if (!m) throw usage(`--units: ${JSON.stringify(part)} is not id:profile (e.g. 1:counter)`);
    const id = Number(m[1]);
    if (id < lo || id > hi) throw usage(`--units: unit id ${id} out of range ${lo}..${hi} for ${mode}`);
    if (!isProfile(m[2])) throw usage(`--units: unknown profile ${JSON.stringify(m[2])} (have: ${PROFILES.join(', ')})`);
    if (devices.has(id)) throw usage(`--units: unit ${id} given twice`);
    devices.set(id, createDevice(m[2], id));
  }
  if (devices.size === 0) throw usage('--units: no unit given');
  return devices;
}

export async function simulate(args: SimulateArgs): Promise<Simulation> {
  const print = args.print ?? ((l: string) => console.log(l));
  const devices = parseUnits(args.units ?? '1:counter', args.mode);
  const unitsText = [...devices].map(([id, d]) => `${id}:${d.profile}`).join(', ');
  // A bad fault script is refused before anything listens.
  let steps: FaultStep[] = [];
  if (args.faults) {
    try {
      steps = loadFaultScript(args.faults);
    } catch (e) {
      throw e instanceof FaultScriptError ? usage(`--faults: ${e.message}`) : e;
    }
    const bad = steps.find((s) => s.unit !== undefined && !devices.has(s.unit));
    if (bad) throw usage(`--faults: ${args.faults}: step at ${bad.atMs} ms names unit ${bad.unit}, which is not simulated (have: ${[...devices.keys()].join(', ')})`);
  }
  let script: FaultScriptRun | undefined;
  const startScript = () => {
    if (steps.length > 0) script = runFaultScript(steps, devices, print, args.adc ? { rawFile: args.adc, divider: args.adcDivider ?? 1 } : undefined);
  };

  if (args.mode === 'modbus-tcp') {
    const tcp = await TcpSimulator.start({ host: args.host, port: args.port, devices, gatewayMode: args.gateway, log: print });
    startScript();
    print(`modbus-tcp simulator listening on ${tcp.host}:${tcp.port}${args.gateway ? ' (gateway mode)' : ''} (units ${unitsText})`);
    return {
      port: tcp.port,
      devices,
      tcp,
      async close() {
        script?.stop();
        await tcp.close();
      },
    };
  }
  if (!args.serial) throw usage('modbus-rtu needs --serial PATH (e.g. one end of a socat pty pair)');
  const baud = args.baud ?? 9600;
  const parity = args.parity ?? 'even';
  const rtu = await RtuSimulator.open({ path: args.serial, fd: args.serialFd, baudRate: baud, parity, devices, emulateLineRate: args.lineRate, log: print });
  startScript();
  const frame = `8${parity[0].toUpperCase()}1`;
  print(`modbus-rtu simulator on ${args.serial} at ${baud} ${frame}${args.lineRate ? ', line rate emulated' : ''} (units ${unitsText})`);
  return {
    devices,
    rtu,
    async close() {
      script?.stop();
      await rtu.close();
    },
  };
}

function intOpt(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw usage(`--${name} must be an integer ${min}..${max}`);
  return n;
}

export const simulateCommand: Command = {
  name: 'simulate',
  usage: 'simulate modbus-tcp|modbus-rtu [options]',
  summary: 'run simulated Modbus devices (TCP server or RTU slave) for demos and tests',
  help: [
    'Modes:',
    '  modbus-tcp          Modbus TCP server (MBAP), several connections, answers in order',
    '  modbus-rtu          RTU slave(s) on a serial port, e.g. one end of `socat pty,raw,echo=0 pty,raw,echo=0`',
    '',
    'Options:',
    '      --units LIST    id:profile pairs, default 1:counter; profiles: ' + PROFILES.join(', '),
    '      --host HOST     modbus-tcp: address to listen on (default 127.0.0.1)',
    '  -p, --port N        modbus-tcp: port (default 1502; 0 = a free port, printed)',
    '      --gateway       modbus-tcp: act as a gateway (exception 0x0B for unknown unit ids)',
    '      --serial PATH   modbus-rtu: serial device',
    '  -b, --baud N        modbus-rtu: baud rate (default 9600)',
    '      --parity P      modbus-rtu: none, even (default) or odd',
    '      --line-rate     modbus-rtu: emulate the line timing of the baud rate (a pty has none)',
    '      --faults FILE   fault script: JSON [{ "atMs": 0, "unit"?: 1, "set": { "slowMs": 200 } }, ...]',
    '                      faults: silence, slowMs, corruptCrc, exception, disconnect, wrongUnit, truncate, garbage;',
    '                      a step { "atMs": 3000, "busVolts": 1.2 } sets the bus voltage through the fake sysfs tree (--adc)',
    '      --adc FILE      fake IIO in_voltageN_raw file (in a test sysfs tree) that busVolts steps write',
    '      --adc-divider R the board profile\'s divider ratio for that channel (default 1)',
    '',
    'Runs until SIGINT/SIGTERM, then prints the request counters.',
  ].join('\n'),
  options: {
    units: { type: 'string', short: 'u' },
    host: { type: 'string' },
    port: { type: 'string', short: 'p' },
    gateway: { type: 'boolean' },
    serial: { type: 'string' },
    baud: { type: 'string', short: 'b' },
    parity: { type: 'string' },
    'line-rate': { type: 'boolean' },
    faults: { type: 'string' },
    adc: { type: 'string' },
    'adc-divider': { type: 'string' },
  },
  async run(v, p) {
    if (p.length !== 1 || (p[0] !== 'modbus-tcp' && p[0] !== 'modbus-rtu')) throw usage('name one mode: modbus-tcp or modbus-rtu');
    const parity = v.parity as string | undefined;
    if (parity !== undefined && parity !== 'none' && parity !== 'even' && parity !== 'odd') throw usage('--parity must be none, even or odd');
    const sim = await simulate({
      mode: p[0],
      host: v.host as string | undefined,
      port: intOpt(v.port, 'port', 0, 65535),
      serial: v.serial as string | undefined,
      baud: intOpt(v.baud, 'baud', 50, 4_000_000),
      parity: parity as Parity | undefined,
      units: v.units as string | undefined,
      faults: v.faults as string | undefined,
      adc: v.adc as string | undefined,
      adcDivider: v['adc-divider'] === undefined ? undefined : Number(v['adc-divider']),
      lineRate: v['line-rate'] === true,
      gateway: v.gateway === true,
    });
    const shutdown = (sig: string) => {
      const stats = sim.tcp?.stats ?? sim.rtu?.stats;
      sim.close().then(
        () => {
          console.log(`simulator stopped (${sig}): ${JSON.stringify(stats)}`);
          process.exit(0);
        },
        (e: unknown) => {
          console.error(e);
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    return -1;
  },
};
