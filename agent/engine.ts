/**
 * The agent process: wires config -> store -> ingest -> lanes -> drivers, runs the sweeper
 * (operator resets, admin requests) and the jittered retention purge, and shuts down in order
 * (sources, last group commit, lanes, database) on SIGTERM/SIGINT.
 */
import cron from 'node-cron';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { Ingest } from './ingest.js';
import { Lane } from './forward/lane.js';
import { SimulatedSource } from './acquisition/simulated.js';
import { VERSION } from './version.js';
import { createDriver } from './uplinks.js';
import { MqttDriver } from '../drivers/mqtt/client.js';
import { loadKeyring, PayloadCodec } from '../store/codec.js';
import type { Store } from '../store/store.js';
import { Storage } from './storage/storage.js';
import { Field } from './acquisition/field.js';
import { loadProfile } from './config/formats.js';
import { BoardSensors } from '../hardware/sensors.js';
import { Thermal } from './thermal.js';
import { Sysfs } from '../hardware/sysfs.js';
import type { Metrics } from './api/metrics.js';
import type { ApiServer } from './api/server.js';
import { createApi, createMetrics, createSelfExport, type GatewayView } from './api/setup.js';
import type { SelfMetricsExport } from './api/self-export.js';
import { LogLimiter } from './log-limit.js';
import type { PartialEvent } from '../drivers/otlp/client.js';
import { systemClock, type Clock } from './clock.js';
import type { ClockWatch } from './clock-watch.js';
import { createClockWatch, unsyncedCounter } from './clock-setup.js';
import type { SafeTimer } from '../drivers/timer.js';
import { shutdownPlan, step } from './shutdown.js';
import { Guard } from './guard.js';
import { SkipReport } from './skip-report.js';
import { ConsoleServer } from './console/server.js';
import { RecentReadings } from './console/tails.js';

/** A collector that answers every batch with a partial success is logged once per this. */
const PARTIAL_LOG_MS = 600_000;

export class Engine {
  /** The store, its failures, the spool and the space policy (agent/storage/). */
  readonly storage: Storage;
  readonly lanes: Lane[];
  readonly ingest: Ingest;
  readonly sources: SimulatedSource[];
  readonly field: Field | null;
  readonly sensors: BoardSensors;
  readonly metrics: Metrics;
  /** The thermal governor: CPU temperature samples and the throttle factor. */
  readonly thermal: Thermal;
  /** Timers and ages run on clock.mono(); clock.wall() only stamps (docs/clocks.md). */
  readonly clock: Clock;
  /** Wall-clock steps and unsynchronised stamps. */
  readonly clockWatch: ClockWatch;
  /** The owner of every timer and callback: a failure is a code, a log line, an event and a metric, not a crash. */
  readonly guard: Guard;
  private api: ApiServer | null = null;
  /** The technician console (agent/console/), on the serial port and the local socket. */
  private console: ConsoleServer | null = null;
  /** The newest readings of each device, for the console's `readings tail`. */
  readonly recent = new RecentReadings();
  private selfExport: SelfMetricsExport | null = null;
  private readonly mqtt: MqttDriver[] = [];
  /** Devices that delivered readings since start (agent/remote/health.ts). */
  readonly answered = new Set<string>();
  private readonly events: Storage['events'];
  private sweepTimer: NodeJS.Timeout | null = null;
  private purgeTask: { stop(): void } | null = null;
  private purgeDelay: SafeTimer | null = null;
  private stopping: Promise<void> | null = null;
  private readonly partialLog = new LogLimiter(PARTIAL_LOG_MS);
  /** Readings an uplink delivered without: metric, events, log (agent/skip-report.ts). */
  private readonly skips: SkipReport;

  constructor(
    readonly cfg: Config,
    readonly log: Logger,
    clock: Clock = systemClock(),
  ) {
    this.clock = clock;
    const s = cfg.store;
    const codec = s.encryption === 'off' ? new PayloadCodec(null, null) : new PayloadCodec(loadKeyring(s.keyFile, s.keyId), s.keyId);
    this.metrics = createMetrics(this.view);
    this.guard = new Guard({
      log,
      count: (site, code) => this.metrics.internalErrors.inc({ site, code }),
      // The store itself may be what failed: then the guard logs that the event was not recorded.
      event: (site, code, message) =>
        this.events.record({ scope: 'gateway', subject: site, kind: 'internal_error', code, faultClass: 'local', at: clock.wall(), detail: { message } }),
      store: (site, e) => this.storage.keeper.fail(e, site),
    });
    // Opens the store (salvaging first when it must), or starts with it unavailable and the spool in use.
    this.storage = new Storage(cfg, log, codec, this.metrics.registry, (m) => this.publishFault(m), () => this.lanes, this.guard, clock);
    this.events = this.storage.events;
    this.sensors = new BoardSensors(loadProfile(cfg.hardware.profile), new Sysfs(cfg.hardware.sysfsRoot));
    this.thermal = new Thermal({
      cfg: cfg.hardware.throttle, events: this.events, log, clock, guard: this.guard, sample: () => this.sensors.cpuTempC(),
      apply: (factor) => {
        for (const l of this.lanes) l.setThrottle(factor);
        this.field?.setThrottle(factor);
      },
    });
    const enabled = cfg.uplinks.filter((u) => u.enabled);
    this.skips = new SkipReport({ events: this.events, counter: this.metrics.sep2Skipped, log, clock });
    this.lanes = enabled.map((u) => {
      const driver = createDriver(cfg, u, { onPartial: (e) => this.onPartial(e), onSkipped: (e) => this.skips.take(e) });
      if (driver instanceof MqttDriver) this.mqtt.push(driver);
      return new Lane({
        cfg: u, codec, events: this.events, log, tasks: this.storage.tasks(u.name), driver, clock, guard: this.guard,
        onLinkFailure: (f) => this.metrics.linkFailures.inc({ uplink: u.name, code: f.code }),
        onStaleAck: (key, uplink, requestAt, ackAt) => this.storage.keeper.acked(key, uplink, requestAt, ackAt),
        onAttempt: (e) => {
          const m = this.metrics;
          m.attempts.inc({ uplink: e.uplink, result: e.result });
          if (e.retry) m.retries.inc({ uplink: e.uplink });
          if (e.result === 'ok') {
            m.deliveries.inc({ uplink: e.uplink });
            if (e.latencyMs !== undefined) m.latency.observe({ uplink: e.uplink }, e.latencyMs / 1000);
          }
        },
      });
    });
    const outbox = this.storage.outbox;
    this.storage.attach(this.lanes);
    const countUnsynced = unsyncedCounter(() => this.metrics, () => this.ingest.stats);
    this.ingest = new Ingest(outbox, codec, cfg.batch, s, log, (r) => {
      this.metrics.readings.inc(r.readings);
      countUnsynced();
      for (const l of this.lanes) l.notify();
    }, clock, this.guard);
    // Which devices delivered readings since this engine started: the remote health check's "devices answer".
    const sink = (device: string, readings: Parameters<Ingest['offer']>[1], cursor?: number) => {
      this.answered.add(device);
      this.recent.add(device, readings);
      return this.ingest.offer(device, readings, cursor);
    };
    this.sources = cfg.sources.map((src) => new SimulatedSource(src, sink, outbox.cursor(src.device), () => clock.wall(), this.guard));
    this.field =
      cfg.buses.length === 0
        ? null
        : new Field(cfg, sink, this.events, this.sensors, log, (m) => {
            if (m.type === 'fault') this.metrics.faults.inc({ class: m.faultClass, code: m.code });
            for (const d of this.mqtt) d.publishEvent('faults', m);
          }, clock, this.guard);
    this.clockWatch = createClockWatch({
      cfg, clock, store: () => this.store, events: this.events, codec, log, lanes: () => this.lanes, metrics: () => this.metrics, guard: this.guard,
      afterStep: () => {
        if (this.purgeTask) this.schedulePurge();
      },
    });
  }

  /** What the metrics and the local API see of the gateway (agent/api/setup.ts). */
  private readonly view: GatewayView = {
    store: () => this.store.admin,
    storeState: () => this.storage.keeper.state(),
    storage: () => this.storage.status(),
    lanes: () => this.lanes,
    fieldFaults: () => this.field?.faults() ?? [],
    busVolts: () => this.field?.busVolts() ?? [],
    thermal: () => this.thermal,
    sweep: () => this.sweep(),
  };

  /** The MQTT driver of the uplink named `name`, if it is an enabled MQTT uplink (the remote channel rides on it). */
  mqttDriver(name: string): MqttDriver | undefined {
    return this.mqtt.find((d) => d.name === name);
  }

  /** The store in use (a stand-in in memory while the store is unavailable). */
  get store(): Store {
    return this.storage.store;
  }

  /** A storage fault or drop on every MQTT uplink's `faults` topic (best effort: the store has the record). */
  private publishFault(m: Record<string, unknown>): void {
    for (const d of this.mqtt) d.publishEvent('faults', m);
  }

  /** Starts everything; resolves once the HTTP server listens (its port, or null when disabled). */
  async start(): Promise<number | null> {
    const c = this.cfg;
    this.log.info({ version: VERSION, gatewayId: c.gatewayId, dataDir: c.dataDir, uplinks: this.lanes.map((l) => l.name) }, 'holdfast starting');
    this.storage.start();
    // Before the lanes: a step while the agent was stopped moves the stored schedules before a lane reads them.
    this.clockWatch.start();
    this.ingest.start();
    for (const l of this.lanes) l.start();
    for (const s of this.sources) s.start();
    if (this.field) this.guard.settle('field.reopen', this.field.start());
    this.thermal.start();
    this.sweepTimer = this.guard.interval('engine.sweep', () => this.sweep(), c.sweepIntervalMs);
    this.selfExport = await createSelfExport(this);
    if (this.stopping) await this.selfExport?.stop();
    else this.selfExport?.start();
    this.schedulePurge();
    await this.startConsole();
    if (!c.api.enabled) return null;
    this.api = createApi(c, this.metrics, this.view, this.guard);
    const port = await this.api.start();
    this.log.info({ listen: c.api.listen, port }, 'HTTP server: /metrics /healthz /readyz /api');
    return port;
  }

  /**
   * An OTLP partial success: the batch is delivered, but the collector refused `rejected` of its
   * points. Each refusal is recovery data (an event with the batch and the collector's message)
   * and counted; a warning (nothing refused) is only logged. Both logs are rate-limited.
   */
  private onPartial(e: PartialEvent): void {
    if (e.rejected > 0) {
      this.metrics.otlpRejected.inc({ uplink: e.uplink }, e.rejected);
      try {
        this.events.record({
          scope: 'uplink', subject: e.uplink, kind: 'partial', faultClass: 'payload', at: this.clock.wall(),
          detail: { task: e.taskId, key: e.key, rejected: e.rejected, message: e.message },
        });
      } catch (err) {
        this.log.error({ err, code: 'STORE_UNAVAILABLE', uplink: e.uplink }, 'partial success not recorded');
      }
    }
    const l = this.partialLog.take(`${e.uplink}:${e.rejected > 0 ? 'rejected' : 'warning'}`);
    if (!l.log) return;
    const what = e.rejected > 0 ? `collector refused ${e.rejected} data point(s) of a delivered batch` : 'collector accepted a batch with a warning';
    this.log.warn({ uplink: e.uplink, task: e.taskId, key: e.key, rejected: e.rejected, suppressedSinceLast: l.suppressed }, `${what}: ${e.message}`);
  }

  /** Re-admits operator-reset tasks and applies admin requests written by the CLI. */
  sweep(): void {
    if (!this.storage.keeper.available) return;
    const now = this.clock.wall();
    try {
      const readmitted = this.store.admin.readmitReset(now);
      for (const r of readmitted) {
        this.log.info({ uplink: r.uplink, tasks: r.n }, 'failed tasks re-admitted after an operator reset');
        this.lanes.find((l) => l.name === r.uplink)?.rescan();
      }
      for (const req of this.events.adminRequests(now)) {
        if (req.kind === 'breaker_reset') {
          this.log.warn({ uplink: req.uplink }, 'breaker reset requested by an operator');
          this.lanes.find((l) => l.name === req.uplink)?.resetBreaker();
        }
      }
      // Writes of the sweep and of events count towards the WAL too: checkpoint when it is due.
      this.store.afterCommit();
    } catch (e) {
      this.log.error({ err: e, code: 'STORE_UNAVAILABLE' }, 'sweep failed');
    }
  }

  /**
   * The purge on its cron line (wall time, by nature). Scheduled again after a step of the wall
   * clock: node-cron keeps the next run it computed, a year away after a clock that ran ahead.
   */
  private schedulePurge(): void {
    this.purgeTask?.stop();
    if (this.stopping) return;
    this.purgeTask = cron.schedule(
      this.cfg.store.purgeCron,
      this.guard.wrap('store.purge', () => {
        // Jittered: a fleet sharing one cron line must not purge (and checkpoint) in the same second.
        this.purgeDelay?.clear();
        this.purgeDelay = this.guard.timeout('store.purge', () => this.purgeNow(), Math.floor(Math.random() * 600_000));
      }),
    );
  }

  /** The retention purge, then the segment files no row refers to any more. */
  purgeNow(): void {
    if (!this.storage.keeper.available) return;
    try {
      const store = this.store;
      const r = store.admin.purge(this.cfg.store.retentionDays * 86_400_000, this.clock.wall());
      const gc = store.collectSegments();
      this.log.info({ ...r, segmentsDeleted: gc.files, segmentBytesFreed: gc.bytes }, 'retention purge');
    } catch (e) {
      this.storage.keeper.fail(e, 'purge');
    }
  }

  /**
   * Stops in order within `timeoutMs` (agent/shutdown.ts), whatever an upstream or a bus does:
   * acquisition, the last group commit, the lanes (in-flight acknowledgements, offline status,
   * connection ended), the store closed last.
   */
  stop(timeoutMs = this.cfg.shutdownTimeoutMs): Promise<void> {
    this.stopping ??= (async () => {
      const mono = () => this.clock.mono();
      const plan = shutdownPlan(mono(), timeoutMs);
      for (const s of this.sources) s.stop();
      // Pollers stop at once; closing the buses' ports and sockets runs alongside what follows.
      const field = this.field?.stop();
      this.thermal.stop();
      this.clockWatch.stop();
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      this.purgeDelay?.clear();
      this.purgeTask?.stop();
      this.storage.stopSending();
      this.guard.run('ingest.commit', () => this.ingest.stop());
      await Promise.all([
        ...this.lanes.map((l) => step(this.log, `uplink ${l.name}`, l.stop(plan), plan.stepsBy, mono)),
        step(this.log, 'field buses', field, plan.stepsBy, mono),
        // Before the database closes: collecting the metrics reads it.
        step(this.log, 'metrics export', this.selfExport?.stop(), plan.stepsBy, mono),
        step(this.log, 'HTTP server', this.api?.stop(), plan.stepsBy, mono),
        step(this.log, 'console', this.console?.stop(), plan.stepsBy, mono),
      ]);
      this.skips.flush();
      this.closeStore();
      this.log.info({ stopMs: Math.round(mono() - plan.startedAt) }, 'holdfast stopped: store closed');
    })();
    return this.stopping;
  }

  /** The console reads the same view as /metrics; a console that cannot start is logged, never fatal. */
  private async startConsole(): Promise<void> {
    if (!this.cfg.console.enabled || this.stopping) return;
    const con = new ConsoleServer({ cfg: this.cfg, log: this.log, view: this.view, recent: this.recent, now: () => this.clock.wall() });
    try {
      await con.start();
      this.console = con;
    } catch (e) {
      this.log.error({ err: e }, `console not started: ${(e as Error).message}`);
      await con.stop();
    }
  }

  /** Closes the spool and the store (idempotent). The segment is synced before the close's checkpoint makes the last rows durable. */
  closeStore(): void {
    this.storage.close();
  }
}
