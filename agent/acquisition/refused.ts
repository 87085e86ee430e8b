/**
 * One device's reads refused with exception 01/02/03 and their re-probe schedule
 * (agent/policy/reprobe.ts): the poller asks which are due, tries each alone, and reports the
 * answer here. Logs the refusal (once, with the first re-probe time) and the return.
 */
import type { Logger } from 'pino';
import type { ReadPlanItem } from '../../drivers/modbus/types.js';
import { accept, due, EMPTY, refuse, type ReprobeConfig, type ReprobeState } from '../policy/reprobe.js';

export class RefusedReads {
  private state: ReprobeState = EMPTY;
  private readonly items = new Map<string, ReadPlanItem>();

  constructor(
    private readonly cfg: ReprobeConfig,
    private readonly device: string,
    private readonly log: Logger,
    private readonly rand: () => number,
  ) {}

  private static key(item: ReadPlanItem): string {
    return `${item.kind}:${item.address}:${item.count}`;
  }

  /** The device refused `item` (first time, or again when probed). */
  refuse(item: ReadPlanItem, code: string, now: number): void {
    const k = RefusedReads.key(item);
    const first = !this.items.has(k);
    this.items.set(k, item);
    this.state = refuse(this.state, k, now, this.cfg, this.rand);
    const r = this.state[k];
    const at = { device: this.device, address: item.address, count: item.count, code, points: item.points.map((p) => p.name), reprobeInMs: r.nextAt - now };
    if (first) this.log.error(at, 'device refuses these registers: points no longer polled, re-probed on a slow schedule (check the device map)');
    else this.log.debug({ ...at, probes: r.probes }, 'refused registers still refused');
  }

  /** Refused reads whose re-probe is due, the longest waiting first. */
  due(now: number): ReadPlanItem[] {
    return due(this.state, now).map((k) => this.items.get(k)!);
  }

  /** The device answered `item`: its points are polled again. */
  answered(item: ReadPlanItem, now: number): void {
    const k = RefusedReads.key(item);
    const r = this.state[k];
    this.state = accept(this.state, k);
    this.items.delete(k);
    this.log.info({ device: this.device, address: item.address, count: item.count, points: item.points.map((p) => p.name), refusedMs: r ? now - r.since : undefined }, 'refused registers answer again: points polled again');
  }

  get size(): number {
    return this.items.size;
  }
}
