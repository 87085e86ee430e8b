/**
 * Fault discrimination on the field side: which of bus, device or point is at fault, and why.
 *
 * A Modbus timeout alone says nothing: the device may be dead, the cable cut, the bias
 * missing, the register map wrong. This module looks at every outcome on a bus (and the bus
 * voltage when the board can measure it) and answers with edge-triggered verdicts, so the
 * poller, the console and MQTT fault events can say "bus cut", not "20 devices timed out".
 * Pure, like retry.ts and breaker.ts: no I/O, no clock (the caller passes `now`), immutable
 * state (every call returns a new one), tables exported so tests and docs iterate the rows.
 *
 * Rules, per bus (a serial line for RTU, the gateway/connection for TCP):
 *   voltage   observeVoltage(): outside window -> RS485_VOLTAGE_LOW/HIGH, physical, bus. It
 *             clears once the reading is back inside by VOLTAGE_HYSTERESIS_V (no flapping on
 *             a noisy edge). A null reading (no ADC, read failed) changes nothing. The default
 *             window 2.5-5.0 V is the site manual's; TIA-485-A only requires a driver output
 *             of at least 1.5 V into 54 ohm and at most 6 V, so 1.5-6 V is within the standard:
 *             pass `window` per bus for sites that follow the standard rather than the manual.
 *   silent    every live device on the bus (observed within staleMs) has its last N outcomes
 *             as timeouts -> MODBUS_TIMEOUT, bus scope, physical (network on a TCP bus: the
 *             gateway or the path to it). With one device on a bus this cannot tell a dead
 *             device from a dead bus; detail.devices says how many were compared.
 *   crc       (crc + framing) / transactions over the last M RTU transactions > threshold,
 *             with at least minErrors of them -> MODBUS_CRC, physical, detail.rate. Clears
 *             when the rate falls under the threshold.
 *   device    one device's last N outcomes are timeouts while a live neighbour's last
 *             outcome is an answer -> MODBUS_TIMEOUT, device scope, class device.
 *   exception EXCEPTION_RULES: 01/02/03 config/hard/point (the poller stops polling that
 *             address, reports it and re-probes it slowly: agent/policy/reprobe.ts), 04 device/soft, 05/06 device/soft with retrySoonerFactor, 0A/0B
 *             network (TCP-to-RTU gateway), anything else device/soft.
 *   transport TRANSPORT_RULES: on TCP a socket errno is network, device scope, never
 *             physical; on RTU (EIO on the serial port) it is local, bus scope.
 * A voltage fault explains timeouts and CRC errors on its bus, and silent/crc faults explain
 * one device's timeouts: while one is active no device-timeout (or silent/crc) verdict is
 * raised. Faults already raised stay until their own condition clears.
 *
 * Recovery: a device answering (ok or exception) clears its timeout and transport faults
 * and the bus `silent` fault; an ok clears its device-scope exceptions, and an ok with
 * `address` clears that point's exception. An RTU ok clears the port's transport fault.
 * Verdicts are edge-triggered: a fault is reported once when raised, a recovery once when
 * cleared; activeFaults() lists what is raised.
 *
 * Codes: transport verdicts carry the errno when errors.ts catalogues it (ECONNREFUSED,
 * ETIMEDOUT, ...); otherwise SERIAL_PORT_ERROR (RTU) or NETWORK_ERROR (TCP), with the errno in
 * detail.errno. A missing errno is EIO.
 *
 * Physical verdicts (and every verdict here) never count against an uplink breaker: the
 * caller simply never feeds field-side verdicts to the uplinks. A cut RS-485 cable says
 * nothing about the broker.
 */
import { familyOf, type ErrorCode, type FaultClass } from '../errors.js';
import type { ModbusFailure } from '../../drivers/modbus/types.js';

export type Transport = 'rtu' | 'tcp';
export type VerdictScope = 'bus' | 'device' | 'point';
export interface Verdict {
  type: 'fault' | 'recovery';
  scope: VerdictScope;
  bus: string;
  device?: string;
  address?: number;
  code: ErrorCode;
  faultClass: FaultClass;
  retry: 'soft' | 'hard';
  /** 05/06: multiply the poll interval by this to retry sooner. */
  retrySoonerFactor?: number;
  at: number;
  detail: { rate?: number; errors?: number; window?: number; volts?: number; min?: number; max?: number; devices?: number; timeouts?: number; exception?: number; errno?: string; catalogued?: boolean; activeMs?: number };
}
export interface ActiveFault extends Verdict { type: 'fault'; since: number }

export interface FaultConfig {
  /** N: consecutive timeouts that make a device (or, all of them, a bus) silent. */
  timeouts: number;
  /** M: RTU transactions in the CRC/framing window. */
  crcWindow: number;
  /** Error rate above which the bus is noisy. */
  crcThreshold: number;
  /** Errors the window must hold before a rate means anything. */
  crcMinErrors: number;
  /** A device not observed for this long is left out of bus-wide comparisons. */
  staleMs: number;
}
export const DEFAULT_FAULT_CONFIG: Readonly<FaultConfig> = Object.freeze({ timeouts: 3, crcWindow: 20, crcThreshold: 0.3, crcMinErrors: 5, staleMs: 600_000 });
export const DEFAULT_VOLTAGE_WINDOW = Object.freeze({ min: 2.5, max: 5.0 });
export const TIA485_VOLTAGE_WINDOW = Object.freeze({ min: 1.5, max: 6.0 });
export const VOLTAGE_HYSTERESIS_V = 0.05;

export interface Rule { code: ErrorCode; faultClass: FaultClass; retry: 'soft' | 'hard'; scope: VerdictScope; retrySoonerFactor?: number; answered: boolean; note: string }
const row = (code: ErrorCode, faultClass: FaultClass, retry: 'soft' | 'hard', scope: VerdictScope, note: string, extra: Partial<Rule> = {}): Rule =>
  Object.freeze({ code, faultClass, retry, scope, answered: true, note, ...extra });

/** Modbus exception code -> verdict (an exception is an answer unless `answered` is false). */
export const EXCEPTION_RULES: Readonly<Record<number, Rule>> = Object.freeze({
  0x01: row('MODBUS_EXCEPTION_01', 'config', 'hard', 'point', 'illegal function: the map asks for a function the device lacks'),
  0x02: row('MODBUS_EXCEPTION_02', 'config', 'hard', 'point', 'illegal data address: the map is wrong for this device'),
  0x03: row('MODBUS_EXCEPTION_03', 'config', 'hard', 'point', 'illegal data value (count or length)'),
  0x04: row('MODBUS_EXCEPTION_04', 'device', 'soft', 'device', 'server device failure'),
  0x05: row('MODBUS_EXCEPTION_05', 'device', 'soft', 'device', 'acknowledge: long operation, poll again soon', { retrySoonerFactor: 0.25 }),
  0x06: row('MODBUS_EXCEPTION_06', 'device', 'soft', 'device', 'server device busy', { retrySoonerFactor: 0.25 }),
  0x0a: row('MODBUS_EXCEPTION_0A', 'network', 'soft', 'device', 'gateway path unavailable', { answered: false }),
  0x0b: row('MODBUS_EXCEPTION_0B', 'network', 'soft', 'device', 'gateway target device failed to respond', { answered: false }),
});
const exceptionCode = (n: number): ErrorCode => `MODBUS_EXCEPTION_${(n & 0xff).toString(16).padStart(2, '0').toUpperCase()}`;
export function exceptionRule(n: number): Rule {
  return Object.hasOwn(EXCEPTION_RULES, n) ? EXCEPTION_RULES[n] : row(exceptionCode(n), 'device', 'soft', 'device', 'unlisted exception');
}

/** Transport failures by transport; the code is the errno (see header). */
export const TRANSPORT_RULES: Readonly<Record<Transport, Omit<Rule, 'code'>>> = Object.freeze({
  tcp: { faultClass: 'network', retry: 'soft', scope: 'device', answered: false, note: 'socket to the device or gateway failed' },
  rtu: { faultClass: 'local', retry: 'soft', scope: 'bus', answered: false, note: 'the serial port failed (EIO: adapter unplugged, driver)' },
});

/** Bus/device conditions. faultClass for silent is per transport. */
export const CONDITION_RULES = Object.freeze({
  voltageLow: row('RS485_VOLTAGE_LOW', 'physical', 'soft', 'bus', 'open bus, missing bias, short'),
  voltageHigh: row('RS485_VOLTAGE_HIGH', 'physical', 'soft', 'bus', 'bus voltage above its window'),
  silentRtu: row('MODBUS_TIMEOUT', 'physical', 'soft', 'bus', 'every device silent: cable, termination, adapter'),
  silentTcp: row('MODBUS_TIMEOUT', 'network', 'soft', 'bus', 'every device behind the gateway silent'),
  crc: row('MODBUS_CRC', 'physical', 'soft', 'bus', 'CRC/framing storm: noise, termination, baud mismatch'),
  deviceTimeout: row('MODBUS_TIMEOUT', 'device', 'soft', 'device', 'one device silent while its neighbours answer'),
});

type Seen = 'ok' | 'timeout' | 'crc' | 'framing' | 'exception' | 'unanswered' | 'transport';
interface DeviceTrack { lastAt: number; recent: readonly Seen[] }
interface BusTrack { transport: Transport; devices: Readonly<Record<string, DeviceTrack>>; window: readonly boolean[] }
export interface FaultState { buses: Readonly<Record<string, BusTrack>>; active: Readonly<Record<string, ActiveFault>> }
export interface Observation { now: number; bus: string; device: string; address?: number; transport: Transport; outcome: { ok: true } | { ok: false; failure: ModbusFailure } }
export interface VoltageObservation { now: number; bus: string; volts: number | null; window?: { min: number; max: number } }
export interface Result { state: FaultState; verdicts: Verdict[] }

export function initialFaultState(): FaultState {
  return { buses: {}, active: {} };
}
export function activeFaults(state: FaultState): ActiveFault[] {
  return Object.values(state.active).sort((a, b) => a.since - b.since);
}

/** Collects edges against a copy of the active set. */
class Edges {
  readonly active: Record<string, ActiveFault>;
  readonly verdicts: Verdict[] = [];
  constructor(active: Readonly<Record<string, ActiveFault>>, readonly now: number) { this.active = { ...active }; }
  has(key: string): boolean { return Object.hasOwn(this.active, key); }
  raise(key: string, rule: Rule, where: { bus: string; device?: string; address?: number }, detail: Verdict['detail']): void {
    if (this.has(key)) return;
    const v: ActiveFault = { type: 'fault', scope: rule.scope, ...where, code: rule.code, faultClass: rule.faultClass, retry: rule.retry, at: this.now, since: this.now, detail };
    if (rule.retrySoonerFactor !== undefined) v.retrySoonerFactor = rule.retrySoonerFactor;
    this.active[key] = v;
    this.verdicts.push(strip(v));
  }
  clear(key: string, detail: Verdict['detail'] = {}): void {
    const f = this.active[key];
    if (!f || !this.has(key)) return;
    delete this.active[key];
    this.verdicts.push({ ...strip(f), type: 'recovery', at: this.now, detail: { ...detail, activeMs: this.now - f.since } });
  }
  clearWhere(prefix: string, detail?: Verdict['detail']): void {
    for (const key of Object.keys(this.active)) if (key.startsWith(prefix)) this.clear(key, detail);
  }
}
function strip(f: ActiveFault): Verdict {
  const { since, ...v } = f;
  void since;
  return v;
}
/** Active-set keys; the ones ending in '|' are prefixes (a code follows). Names are escaped. */
const key = (...parts: (string | number | undefined)[]) => parts.map((p) => encodeURIComponent(String(p ?? ''))).join('|');
const keys = {
  voltage: (bus: string) => key('voltage', bus),
  silent: (bus: string) => key('silent', bus),
  crc: (bus: string) => key('crc', bus),
  timeout: (bus: string, dev: string) => key('timeout', bus, dev),
  exception: (bus: string, dev: string) => key('exception', bus, dev, ''),
  point: (bus: string, dev: string, address?: number) => key('point', bus, dev, address, ''),
  transport: (bus: string, dev?: string) => key('transport', bus, dev, ''),
};

function seenOf(o: Observation['outcome']): Seen {
  if (o.ok) return 'ok';
  const f = o.failure;
  if (f.kind === 'exception') return exceptionRule(f.exception ?? 0).answered ? 'exception' : 'unanswered';
  return f.kind;
}
const answered = (s: Seen | undefined) => s === 'ok' || s === 'exception';
const positiveInt = (n: number, d: number) => (Number.isFinite(n) && n >= 1 ? Math.floor(n) : d);

/** Feeds one driver outcome. Never mutates `state`. */
export function observe(state: FaultState, obs: Observation, cfg: FaultConfig = DEFAULT_FAULT_CONFIG): Result {
  const { now, bus, device, address, transport } = obs;
  const n = positiveInt(cfg.timeouts, 3);
  const m = positiveInt(cfg.crcWindow, 20);
  const seen = seenOf(obs.outcome);
  const prev = state.buses[bus] ?? { transport, devices: {}, window: [] };
  const track = prev.devices[device] ?? { lastAt: now, recent: [] };
  const devices = { ...prev.devices, [device]: { lastAt: now, recent: [...track.recent, seen].slice(-n) } };
  const onWire = transport === 'rtu' && seen !== 'transport';
  const window = onWire ? [...prev.window, seen === 'crc' || seen === 'framing'].slice(-m) : prev.window;
  const busTrack: BusTrack = { transport, devices, window };
  const e = new Edges(state.active, now);

  // Outcome-specific edges.
  if (answered(seen)) {
    e.clear(keys.timeout(bus, device));
    e.clear(keys.silent(bus), { devices: Object.keys(devices).length });
    e.clearWhere(keys.transport(bus, device));
    if (transport === 'rtu') e.clearWhere(keys.transport(bus));
  }
  if (seen === 'ok') {
    e.clearWhere(keys.exception(bus, device));
    if (address !== undefined) e.clearWhere(keys.point(bus, device, address));
  }
  if (!obs.outcome.ok) {
    const f = obs.outcome.failure;
    if (f.kind === 'exception') {
      const rule = exceptionRule(f.exception ?? 0);
      const point = rule.scope === 'point';
      const k = (point ? keys.point(bus, device, address) : keys.exception(bus, device)) + rule.code;
      e.raise(k, rule, point && address !== undefined ? { bus, device, address } : { bus, device }, f.exception === undefined ? {} : { exception: f.exception });
    } else if (f.kind === 'transport') {
      const errno = f.errno || 'EIO';
      // A catalogued errno is the code; anything else is UPLINK_ERROR on TCP, SERIAL_PORT_ERROR on RTU, with the errno in detail.
      const known = familyOf(errno) !== undefined;
      const code = (known ? errno : transport === 'rtu' ? 'SERIAL_PORT_ERROR' : 'NETWORK_ERROR') as ErrorCode;
      const rule: Rule = { ...TRANSPORT_RULES[transport], code };
      const where = rule.scope === 'bus' ? { bus } : { bus, device };
      e.raise(keys.transport(bus, rule.scope === 'bus' ? undefined : device) + key(errno), rule, where, { errno, catalogued: familyOf(errno) !== undefined });
    }
  }

  // Bus-wide conditions, then the one device (so a bus verdict wins in the same step).
  const voltage = e.has(keys.voltage(bus));
  const live = Object.entries(devices).filter(([, d]) => d.lastAt >= now - cfg.staleMs);
  const silent = (d: DeviceTrack) => d.recent.length >= n && d.recent.every((s) => s === 'timeout');
  if (!voltage && live.length > 0 && live.every(([, d]) => silent(d))) {
    const rule = transport === 'tcp' ? CONDITION_RULES.silentTcp : CONDITION_RULES.silentRtu;
    e.raise(keys.silent(bus), rule, { bus }, { devices: live.length, timeouts: n });
  }
  const errors = window.filter(Boolean).length;
  const rate = window.length > 0 ? errors / window.length : 0;
  const crcDetail = { rate, errors, window: window.length };
  if (e.has(keys.crc(bus)) && rate < cfg.crcThreshold) e.clear(keys.crc(bus), crcDetail);
  else if (!voltage && onWire && errors >= cfg.crcMinErrors && rate > cfg.crcThreshold) e.raise(keys.crc(bus), CONDITION_RULES.crc, { bus }, crcDetail);

  const explained = voltage || e.has(keys.silent(bus)) || e.has(keys.crc(bus));
  const neighbourAnswers = live.some(([name, d]) => name !== device && answered(d.recent[d.recent.length - 1]));
  if (seen === 'timeout' && !explained && neighbourAnswers && silent(devices[device])) {
    e.raise(keys.timeout(bus, device), CONDITION_RULES.deviceTimeout, { bus, device }, { timeouts: n });
  }
  return { state: { buses: { ...state.buses, [bus]: busTrack }, active: e.active }, verdicts: e.verdicts };
}

/** Feeds one bus-voltage reading (null: unknown, changes nothing). Never mutates `state`. */
export function observeVoltage(state: FaultState, obs: VoltageObservation): Result {
  const { now, bus, volts } = obs;
  const w = obs.window && Number.isFinite(obs.window.min) && Number.isFinite(obs.window.max) && obs.window.min < obs.window.max ? obs.window : DEFAULT_VOLTAGE_WINDOW;
  if (volts === null || !Number.isFinite(volts)) return { state, verdicts: [] };
  const key = keys.voltage(bus);
  const e = new Edges(state.active, now);
  const current = e.active[key]?.code;
  const detail = { volts, min: w.min, max: w.max };
  const want = volts < w.min ? CONDITION_RULES.voltageLow : volts > w.max ? CONDITION_RULES.voltageHigh : undefined;
  if (want && current !== want.code) {
    e.clear(key, detail);
    e.raise(key, want, { bus }, detail);
  } else if (!want && current !== undefined && volts >= w.min + VOLTAGE_HYSTERESIS_V && volts <= w.max - VOLTAGE_HYSTERESIS_V) {
    e.clear(key, detail);
  }
  return { state: e.verdicts.length ? { ...state, active: e.active } : state, verdicts: e.verdicts };
}
