/** The validated, defaulted, frozen configuration. Shapes mirror agent/config/schema.ts. */

export type RetryStrategy = 'EXPONENTIAL_BACKOFF' | 'DECORRELATED_JITTER' | 'LINEAR' | 'FIXED' | 'ADAPTIVE';
export const RETRY_STRATEGIES: readonly RetryStrategy[] = ['EXPONENTIAL_BACKOFF', 'DECORRELATED_JITTER', 'LINEAR', 'FIXED', 'ADAPTIVE'];

export interface RetryConfig {
  strategy: RetryStrategy;
  baseMs: number;
  maxMs: number;
  /** Fraction of +-jitter added to LINEAR and FIXED (the other two are jittered by construction). */
  jitter: number;
  maxAttempts: number;
  maxAgeMs: number;
  /** How long a lane holds its data after a hard link failure (bad credentials) before it tries again. */
  hardFailureHoldMs: number;
}

export interface BreakerConfig {
  windowMs: number;
  minCalls: number;
  failureRate: number;
  openMs: number;
  halfOpenProbes: number;
}

export interface DrainConfig {
  startJitterMs: number;
  readingsPerSec: number;
  messagesPerSec: number;
  /** Tasks read from the store per pull. */
  pullTasks: number;
}

export interface RetryBudgetConfig {
  ratio: number;
  minPerSec: number;
}

export interface MqttUplinkConfig {
  name: string;
  type: 'mqtt';
  enabled: boolean;
  url: string;
  clientId?: string;
  username?: string;
  passwordFile?: string;
  topicPrefix?: string;
  keepaliveS: number;
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  maxPacketBytes: number;
  maxInflight: number;
  priority: number;
  retry: RetryConfig;
  breaker: BreakerConfig;
  drain: DrainConfig;
  retryBudget: RetryBudgetConfig;
}

/** What every uplink type has: the lane's policy knobs. */
export interface UplinkCommon {
  name: string;
  enabled: boolean;
  maxInflight: number;
  /** Higher keeps its pending data longer when the store is full. */
  priority: number;
  retry: RetryConfig;
  breaker: BreakerConfig;
  drain: DrainConfig;
  retryBudget: RetryBudgetConfig;
}

export interface OtlpUplinkConfig extends UplinkCommon {
  type: 'otlp';
  url: string;
  headersFile?: string;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  compression: 'none' | 'gzip';
  timeoutMs: number;
}

export interface Sep2UplinkConfig extends UplinkCommon {
  type: 'sep2';
  url: string;
  dcapPath: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  ciphers?: string;
  pen: number;
  timeoutMs: number;
}

export type UplinkConfig = MqttUplinkConfig | OtlpUplinkConfig | Sep2UplinkConfig;

export interface SimulatedSourceConfig {
  type: 'simulated';
  device: string;
  intervalMs: number;
  /** Readings per poll (the first is always the `counter` point). */
  points: number;
  /** Stop when the counter reaches this value (tests, benchmarks). */
  stopAfter?: number;
}

export type SourceConfig = SimulatedSourceConfig;

export interface StoreConfig {
  encryption: 'aes-256-gcm' | 'off';
  keyFile: string;
  keyId: string;
  commitIntervalMs: number;
  synchronous: 'OFF' | 'NORMAL' | 'FULL';
  busyTimeoutMs: number;
  maxQueuedReadings: number;
  retentionDays: number;
  purgeCron: string;
  /** Byte quota of database + WAL + segments; 0: only the filesystem bounds it. */
  maxBytes: number;
  minFreeRatio: number;
  fullPolicy: FullPolicy;
  downsampleMs: number;
  spoolDir: string;
  spoolMaxBytes: number;
}

export type FullPolicy = 'drop-oldest' | 'downsample' | 'reject-new';

export interface BatchConfig {
  maxReadings: number;
  maxAgeMs: number;
}

export interface FieldDeviceConfig {
  name: string;
  unitId: number;
  map: string;
  pollMs: number;
  timeoutMs?: number;
  coalesceGap?: number;
}

export interface BusConfig {
  name: string;
  type: 'rtu' | 'tcp';
  port?: string;
  baudRate: number;
  parity: 'none' | 'even' | 'odd';
  dataBits: 7 | 8;
  stopBits: 1 | 2;
  frameGapMs: number;
  host?: string;
  tcpPort: number;
  connectTimeoutMs: number;
  timeoutMs: number;
  maxQueue: number;
  voltage: { min: number; max: number; pollMs: number };
  retry: RetryConfig;
  /** agent/policy/reprobe.ts */
  reprobe: { baseMs: number; maxMs: number; jitter: number };
  devices: FieldDeviceConfig[];
}

export interface HardwareConfig {
  profile: string;
  sysfsRoot: string;
  throttle: ThrottleConfig;
}

/** agent/policy/governor.ts's GovernorConfig plus the sample interval. */
export interface ThrottleConfig {
  aboveC: number;
  belowC: number;
  factor: number;
  minDwellMs: number;
  sampleMs: number;
}

export interface ApiConfig {
  enabled: boolean;
  listen: string;
  port: number;
  allow: string[];
  tokenFile?: string;
}

/** The agent's own metrics over OTLP (agent/api/self-export.ts). */
export interface SelfMetricsConfig {
  /** An uplink of type otlp (checked in load.ts): its endpoint, TLS, headers and compression. */
  uplink: string;
  intervalMs: number;
  jitter: number;
  timeoutMs: number;
}

export interface HoldfastConfig {
  gatewayId: string;
  dataDir: string;
  logFile: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** The same as store.spoolDir (load.ts makes them equal). */
  spoolDir: string;
  sweepIntervalMs: number;
  shutdownTimeoutMs: number;
  store: StoreConfig;
  batch: BatchConfig;
  sources: SourceConfig[];
  hardware: HardwareConfig;
  buses: BusConfig[];
  api: ApiConfig;
  selfMetrics?: SelfMetricsConfig;
  uplinks: UplinkConfig[];
}

export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

export type Config = DeepReadonly<HoldfastConfig>;
