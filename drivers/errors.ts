/**
 * The error a driver throws for options that cannot work (an OTLP URL that is not one, TLS files
 * on a plaintext URL): the configuration's own code, CONFIG_INVALID, documented with the rest of
 * the catalogue (agent/error-catalogue.ts). Expected failures on the wire are results, never
 * this. It carries the mark by which the agent's HoldfastError recognises a coded error of any
 * room (agent/errors.ts), so the drivers need not import the agent.
 */
const CODED_ERROR = Symbol.for('holdfast.coded-error');

export type DriverCode = 'CONFIG_INVALID';

export class DriverError extends Error {
  readonly [CODED_ERROR] = true;
  /** The option or value at fault. */
  readonly at?: string;
  constructor(readonly code: DriverCode, message: string, at?: string) {
    super(at ? `${code}: ${at}: ${message}` : `${code}: ${message}`);
    this.name = 'HoldfastError';
    this.at = at;
  }
}
