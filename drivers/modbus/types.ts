/** Shapes shared by the Modbus drivers, device maps, simulators and fault discrimination. */

export type RegisterKind = 'holding' | 'input' | 'coil' | 'discrete';
export type DataType = 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64' | 'string' | 'bool';
/** big: the most significant 16-bit word comes first (the Modbus convention). */
export type WordOrder = 'big' | 'little';
/** big: the most significant byte of each register comes first (the Modbus convention). */
export type ByteOrder = 'big' | 'little';

export interface PointDef {
  name: string;
  kind: RegisterKind;
  /** 0-based protocol address (what goes in the PDU). */
  address: number;
  type: DataType;
  /** Registers for `string` (2 characters each); derived from the type otherwise. */
  length?: number;
  wordOrder?: WordOrder;
  byteOrder?: ByteOrder;
  /** value = raw * scale * 10^sf + offset */
  scale?: number;
  offset?: number;
  /** Name of the point holding a SunSpec scale factor (int16 power of ten) for this one. */
  scaleFactor?: string;
  unit?: string;
  /** 'sunspec': the SunSpec "not implemented" value of the type means no reading (quality not_implemented). */
  notImplemented?: 'sunspec';
  /** Poll this point at its own period (ms) instead of the device's. */
  pollMs?: number;
}

export interface DeviceMap {
  name: string;
  description?: string;
  /** Gap of unmapped registers a coalesced read may bridge (default 0: adjacent only). */
  coalesceGap?: number;
  points: PointDef[];
}

/** One coalesced read: the registers (or bits) [address, address + count) of one kind. */
export interface ReadPlanItem {
  kind: RegisterKind;
  address: number;
  count: number;
  points: PointDef[];
}

/** Why one Modbus transaction failed, as the driver saw it (no policy here). */
export type ModbusFailureKind =
  | 'timeout' // no answer within the request timeout
  | 'crc' // a frame failed its CRC
  | 'framing' // wrong unit, wrong function, wrong byte count, truncated, garbage
  | 'exception' // the device answered with an exception code
  | 'transport'; // the TCP connection or the serial port failed (ECONNREFUSED, EIO, ...)

export interface ModbusFailure {
  kind: ModbusFailureKind;
  /** Exception code (kind 'exception'), e.g. 2 for illegal data address. */
  exception?: number;
  /** Transport error code (kind 'transport'), e.g. 'ECONNREFUSED'. */
  errno?: string;
  message: string;
}

export type ReadResult = { ok: true; registers: number[]; bits?: undefined } | { ok: true; bits: boolean[]; registers?: undefined } | { ok: false; failure: ModbusFailure };
