/**
 * The fleet bench's Mosquitto: the tests' broker (test/helpers/mosquitto.ts) on a fixed port
 * across stop() and start() (the outage), no persistence (every gateway connects with a clean
 * session), unlimited queues and in-flight windows (a slow subscriber sees every message instead
 * of mosquitto dropping some), no connection limit, and a log of connections, not of every packet.
 */
import { startBroker, type Broker } from '../../../test/helpers/mosquitto.js';

export type FleetBroker = Broker;

export function fleetBroker(): Promise<FleetBroker> {
  return startBroker({ logTypes: ['error', 'warning', 'notice'], extraConf: ['max_connections -1'] });
}
