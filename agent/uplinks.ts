/**
 * One driver per configured uplink, by type: MQTT, OTLP/gRPC or IEEE 2030.5. The lanes see only
 * the UplinkDriver interface; everything type-specific (topics, certificates, headers) is read
 * here, once, at start-up.
 */
import { readSmallFile } from '../drivers/files.js';
import { registerSecret } from '../drivers/redact.js';
import { HoldfastError } from './errors.js';
import type { Config, DeepReadonly, UplinkConfig } from './config/types.js';
import { topicPrefix } from './config/load.js';
import { VERSION } from './version.js';
import type { UplinkDriver } from '../drivers/uplink.js';
import { MqttDriver } from '../drivers/mqtt/client.js';
import type { PartialEvent } from '../drivers/otlp/client.js';
import { Sep2Driver, type SkippedReadings } from '../drivers/sep2/client.js';

/** What the agent wants to hear from drivers beyond send results (each applies to some types only). */
export interface DriverHooks {
  /** OTLP: the collector answered a batch with a partial success (see OtlpDriverOptions.onPartial). */
  onPartial?: (e: PartialEvent) => void;
  /** IEEE 2030.5: readings a delivered batch went without (see Sep2DriverOptions.onSkipped). */
  onSkipped?: (e: SkippedReadings) => void;
}

/** gRPC metadata of an OTLP uplink, from its headersFile (a JSON object of strings). */
export function otlpHeaders(u: { headersFile?: string }): Record<string, string> | undefined {
  if (!u.headersFile) return undefined;
  const r = readSmallFile(u.headersFile, { secret: true });
  if (!r.ok) throw new HoldfastError(r.code, r.message, u.headersFile);
  try {
    const headers = JSON.parse(r.data.toString('utf8')) as Record<string, string>;
    for (const v of Object.values(headers)) if (typeof v === 'string') registerSecret(v);
    return headers;
  } catch (e) {
    throw new HoldfastError('CONFIG_PARSE', `headersFile is not JSON: ${(e as Error).message}`, u.headersFile);
  }
}

/** Driver modules loaded on demand: the OTLP one brings gRPC and OpenTelemetry (megabytes of RSS). */
const loaded: { otlp?: typeof import('../drivers/otlp/client.js') } = {};

/** Loads the driver modules `cfg`'s uplinks need; call (and await) before createDriver. */
export async function loadDrivers(cfg: DeepReadonly<Pick<Config, 'uplinks'>>): Promise<void> {
  if (cfg.uplinks.some((u) => u.type === 'otlp')) loaded.otlp ??= await import('../drivers/otlp/client.js');
}

export function createDriver(cfg: Config, u: DeepReadonly<UplinkConfig>, hooks: DriverHooks = {}): UplinkDriver {
  switch (u.type) {
    case 'mqtt':
      return new MqttDriver({
        name: u.name, url: u.url, gatewayId: cfg.gatewayId, topicPrefix: topicPrefix(cfg, u.topicPrefix), clientId: u.clientId,
        username: u.username, passwordFile: u.passwordFile, keepaliveS: u.keepaliveS, connectTimeoutMs: u.connectTimeoutMs,
        ackTimeoutMs: u.ackTimeoutMs, maxPacketBytes: u.maxPacketBytes, version: VERSION,
      });
    case 'otlp':
      if (!loaded.otlp) throw new Error('internal: loadDrivers() was not awaited before createDriver() for an otlp uplink');
      return new loaded.otlp.OtlpDriver({
        name: u.name, url: u.url, gatewayId: cfg.gatewayId, hardwareProfile: cfg.hardware.profile,
        headers: otlpHeaders(u),
        tlsCaFile: u.tlsCaFile, tlsCertFile: u.tlsCertFile, tlsKeyFile: u.tlsKeyFile, compression: u.compression,
        timeoutMs: u.timeoutMs, sendWindow: u.maxInflight, onPartial: hooks.onPartial, version: VERSION,
      });
    case 'sep2':
      return new Sep2Driver({
        name: u.name, url: u.url, dcapPath: u.dcapPath, certFile: u.certFile, keyFile: u.keyFile, caFile: u.caFile,
        ciphers: u.ciphers, pen: u.pen, gatewayId: cfg.gatewayId, timeoutMs: u.timeoutMs, onSkipped: hooks.onSkipped,
      });
  }
}
