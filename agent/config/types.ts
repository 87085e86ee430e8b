/**
 * The validated, defaulted, frozen configuration: types derived from the JSON Schema in
 * agent/config/schema.ts (json-schema-to-ts), so they cannot drift from what ajv checks. A key
 * with a `default` is required here, since ajv (useDefaults) fills it in before anyone reads it.
 * What a field means is said by its `description` in the schema.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { configSchema } from './schema.js';

/** The schema's own shape, before load.ts's own rules (see HoldfastConfig). */
type Derived = FromSchema<typeof configSchema>;

/** The config as load.ts builds it (mutable until frozen). */
export interface HoldfastConfig extends Omit<Derived, 'spoolDir'> {
  /** The same as store.spoolDir (load.ts makes them equal), so always set. */
  spoolDir: string;
}

export type UplinkConfig = HoldfastConfig['uplinks'][number];
export type MqttUplinkConfig = Extract<UplinkConfig, { type: 'mqtt' }>;
export type OtlpUplinkConfig = Extract<UplinkConfig, { type: 'otlp' }>;
export type Sep2UplinkConfig = Extract<UplinkConfig, { type: 'sep2' }>;

/** What every uplink type has: the lane's policy knobs. */
export type UplinkCommon = Pick<UplinkConfig, 'name' | 'enabled' | 'maxInflight' | 'priority' | 'retry' | 'breaker' | 'drain' | 'retryBudget'>;

export type RetryConfig = UplinkConfig['retry'];
export type RetryStrategy = RetryConfig['strategy'];
/** The schema's retry.strategy enum (env RETRY_STRATEGY is checked against it). */
export const RETRY_STRATEGIES: readonly RetryStrategy[] = configSchema.properties.buses.items.properties.retry.properties.strategy.enum;
export type BreakerConfig = UplinkConfig['breaker'];
export type DrainConfig = UplinkConfig['drain'];
export type RetryBudgetConfig = UplinkConfig['retryBudget'];

export type SourceConfig = HoldfastConfig['sources'][number];
export type SimulatedSourceConfig = Extract<SourceConfig, { type: 'simulated' }>;

export type StoreConfig = HoldfastConfig['store'];
export type FullPolicy = StoreConfig['fullPolicy'];
export type BatchConfig = HoldfastConfig['batch'];

/** A Modbus bus; its `reprobe` is agent/policy/reprobe.ts's. */
export type BusConfig = HoldfastConfig['buses'][number];
export type FieldDeviceConfig = BusConfig['devices'][number];

export type HardwareConfig = HoldfastConfig['hardware'];
/** agent/policy/governor.ts's GovernorConfig plus the sample interval. */
export type ThrottleConfig = HardwareConfig['throttle'];

export type ApiConfig = HoldfastConfig['api'];

/**
 * The agent's own metrics over OTLP (agent/api/self-export.ts). `uplink` names an uplink of type
 * otlp (checked in load.ts): its endpoint, TLS, headers and compression are used.
 */
export type SelfMetricsConfig = NonNullable<HoldfastConfig['selfMetrics']>;

export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

export type Config = DeepReadonly<HoldfastConfig>;
