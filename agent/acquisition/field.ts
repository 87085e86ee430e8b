/**
 * The field side of the engine: one transport per bus (RTU master or TCP client), one poller per
 * device, the bus-voltage sampler, and fault discrimination. Buses run in parallel; devices on a
 * bus share its serial queue. Every verdict and recovery of agent/policy/faults.ts becomes a
 * recovery event, a log line and a message for the MQTT `faults` topic; a physical fault lights
 * the board's fault LED until no physical fault is active. Field faults never reach an uplink
 * breaker: they do not pass through the lanes at all.
 */
import type { Logger } from 'pino';
import type { BusConfig, Config, DeepReadonly } from '../config/types.js';
import type { Sink } from '../reading.js';
import type { Events } from '../../store/events.js';
import { RtuMaster } from '../../drivers/modbus/rtu-master.js';
import { TcpClient } from '../../drivers/modbus/tcp-client.js';
import { loadDeviceMap } from '../config/formats.js';
import { activeFaults, initialFaultState, observe, observeVoltage, type FaultState, type Verdict } from '../policy/faults.js';
import type { BoardSensors } from '../../hardware/sensors.js';
import { DevicePoller, type BusReader, type PollOutcome } from './poller.js';
import { systemClock, wallAt, type Clock } from '../clock.js';
import type { SafeTimer } from '../../drivers/timer.js';
import { Guard } from '../guard.js';

export interface FaultMessage extends Verdict {
  at: number;
  gatewayId: string;
}

interface Bus {
  cfg: DeepReadonly<BusConfig>;
  reader: BusReader & { close(): Promise<void> };
  open(): Promise<{ ok: true } | { ok: false; errno: string; message: string }>;
  pollers: DevicePoller[];
  voltageTimer: NodeJS.Timeout | null;
}

export class Field {
  private state: FaultState = initialFaultState();
  readonly buses: Bus[] = [];
  private reopen = new Map<string, SafeTimer>();
  private stopped = false;
  private ledOn = false;

  constructor(
    private readonly cfg: Config,
    private readonly sink: Sink,
    private readonly events: Events,
    private readonly sensors: BoardSensors,
    private readonly log: Logger,
    private readonly publish: (m: FaultMessage) => void,
    /** Fault windows and poll grids run on clock.mono(); events and messages are stamped with clock.wall(). */
    private readonly clock: Clock = systemClock(),
    /** Owns the bus timers and every poller's (default: one that only logs). */
    private readonly guard: Guard = new Guard({ log }),
  ) {
    for (const b of cfg.buses) this.buses.push(this.makeBus(b));
  }

  private makeBus(b: DeepReadonly<BusConfig>): Bus {
    let reader: Bus['reader'];
    let open: Bus['open'];
    if (b.type === 'rtu') {
      const m = new RtuMaster({ path: this.sensors.portPath(b.port!), baudRate: b.baudRate, parity: b.parity, dataBits: b.dataBits, stopBits: b.stopBits, maxQueue: b.maxQueue, frameGapMs: b.frameGapMs });
      reader = m;
      open = () => m.open();
    } else {
      reader = new TcpClient({ host: b.host!, port: b.tcpPort, connectTimeoutMs: b.connectTimeoutMs, maxQueue: b.maxQueue });
      open = async () => ({ ok: true });
    }
    const bus: Bus = { cfg: b, reader, open, pollers: [], voltageTimer: null };
    for (const d of b.devices) {
      const points = d.map === 'sunspec' ? 'sunspec' : loadDeviceMap(d.map).points;
      const gap = d.coalesceGap ?? (d.map === 'sunspec' ? 0 : loadDeviceMap(d.map).coalesceGap ?? 0);
      bus.pollers.push(
        new DevicePoller(
          { bus: b.name, device: d.name, unitId: d.unitId, pollMs: d.pollMs, timeoutMs: d.timeoutMs ?? b.timeoutMs, points, gap, retry: b.retry, soonerFactor: 0.25, reprobe: b.reprobe },
          reader,
          this.sink,
          (o) => this.outcome(b, d.name, o),
          this.log,
          Math.random,
          this.clock,
          this.guard,
        ),
      );
    }
    return bus;
  }

  async start(): Promise<void> {
    await Promise.all(this.buses.map((b) => this.guard.runAsync('field.reopen', () => this.startBus(b), () => this.retryOpen(b))));
  }

  /** Opens the bus again in 5-10 s (jittered: a fleet's buses must not reopen in step). */
  private retryOpen(b: Bus): void {
    if (this.stopped) return;
    const ms = 5000 + Math.floor(Math.random() * 5000);
    this.reopen.set(b.cfg.name, this.guard.timeout('field.reopen', () => this.startBus(b), ms, () => this.retryOpen(b)));
  }

  private async startBus(b: Bus): Promise<void> {
    const r = await b.open();
    if (!r.ok) {
      this.log.error({ bus: b.cfg.name, code: r.errno }, `cannot open the bus: ${r.message}; retrying`);
      this.outcome(b.cfg, b.cfg.devices[0].name, { ok: false, failure: { kind: 'transport', errno: r.errno, message: r.message } });
      this.retryOpen(b);
      return;
    }
    const t0 = this.clock.mono();
    // Spread the devices of a bus over one poll period so their requests do not all queue at once.
    b.pollers.forEach((p, i) => p.start(t0 + Math.floor((i * b.cfg.devices[i].pollMs) / b.pollers.length)));
    if (b.cfg.type === 'rtu' && this.sensors.hasBusVoltage(b.cfg.name)) {
      const sample = () => this.voltage(b.cfg);
      this.guard.run('field.voltage', sample);
      b.voltageTimer = this.guard.interval('field.voltage', sample, b.cfg.voltage.pollMs);
    }
  }

  private readonly lastVolts = new Map<string, number | null>();

  /** Last bus-voltage sample of each measured bus. */
  busVolts(): { bus: string; volts: number | null }[] {
    return [...this.lastVolts].map(([bus, volts]) => ({ bus, volts }));
  }

  private voltage(b: DeepReadonly<BusConfig>): void {
    const volts = this.sensors.busVolts(b.name);
    this.lastVolts.set(b.name, volts);
    const r = observeVoltage(this.state, { now: this.clock.mono(), bus: b.name, volts, window: { min: b.voltage.min, max: b.voltage.max } });
    this.apply(r.state, r.verdicts);
  }

  private outcome(b: DeepReadonly<BusConfig>, device: string, o: PollOutcome): void {
    const r = observe(this.state, { now: this.clock.mono(), bus: b.name, device, outcome: o.ok ? { ok: true } : { ok: false, failure: o.failure }, transport: b.type, address: o.address });
    this.apply(r.state, r.verdicts);
  }

  private apply(state: FaultState, verdicts: readonly Verdict[]): void {
    this.state = state;
    const now = this.clock.wall();
    for (const v of verdicts) {
      const subject = v.scope === 'bus' ? v.bus : v.scope === 'device' ? `${v.bus}/${v.device}` : `${v.bus}/${v.device}@${v.address}`;
      const scope = v.scope === 'bus' ? 'bus' : 'device';
      const kind = `fault:${v.code}`;
      if (v.type === 'fault') {
        this.events.open({ scope, subject, kind, code: v.code, faultClass: v.faultClass, at: now, detail: v.detail });
        this.log.warn({ bus: v.bus, device: v.device, code: v.code, faultClass: v.faultClass, detail: v.detail }, `field fault (${v.faultClass})`);
      } else {
        const ms = this.events.close(scope, subject, kind, now);
        this.log.info({ bus: v.bus, device: v.device, code: v.code, faultClass: v.faultClass, durationMs: ms }, 'field fault cleared');
      }
      this.publish({ ...v, at: now, gatewayId: this.cfg.gatewayId });
    }
    const physical = activeFaults(this.state).some((f) => f.faultClass === 'physical');
    if (physical !== this.ledOn) {
      this.ledOn = physical;
      this.sensors.faultLed(physical);
    }
  }

  /** Active field faults (for status). */
  faults(): readonly Verdict[] {
    // The policy runs on the monotonic clock; what is shown is wall time.
    return activeFaults(this.state).map((f) => ({ ...f, at: wallAt(this.clock, f.at), since: wallAt(this.clock, f.since) }));
  }

  /** The thermal governor's factor for every poller (1: full speed). */
  setThrottle(factor: number): void {
    for (const b of this.buses) for (const p of b.pollers) p.setThrottle(factor);
  }

  /** Every poller and timer stops at once; then the buses' ports and sockets close together. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.reopen.values()) t.clear();
    for (const b of this.buses) {
      if (b.voltageTimer) clearInterval(b.voltageTimer);
      for (const p of b.pollers) p.stop();
    }
    await Promise.all(this.buses.map((b) => b.reader.close()));
  }
}
