/**
 * The data of the error-code catalogue: for each stable code its class, what it means and what
 * the operator does about it. docs/errors.md is generated from this (scripts/errors-doc.ts), so
 * the words here are the documentation; agent/errors.ts holds the types and helpers around it.
 */
import { STORE_CODES } from '../store/errors.js';

/**
 * The classes a code can have, with what each means to the operator (the doc prints these).
 * Uplink failures are scope x kind (agent/policy/classify.ts); the rest say where the fault is.
 */
export const CLASSES = {
  'link/soft': 'the upstream or the path to it failed for now: the data is kept, retried with jittered backoff (server hints such as Retry-After and gRPC RetryInfo honoured) and counted by the uplink\'s circuit breaker',
  'link/hard': 'the upstream refuses this gateway for a reason no retry can fix (credentials, certificate, wrong endpoint): the data is kept, the lane holds for `retry.hardFailureHoldMs` and raises an alarm instead of hammering; fix the cause, then `holdfast breaker reset <uplink>`',
  'payload/hard': 'this one batch cannot be delivered as it is (the upstream refuses it as malformed or too large, or it cannot be read back here): it is dead-lettered (status `failed`) and the lane goes on; fix the cause, then `holdfast retry reset`',
  task: 'one delivery task gave up at its retry limits and was dead-lettered; `last_error` names the failure behind it',
  physical: 'field side, the RS-485 bus itself (wiring, bias, termination, noise): every device on it is affected',
  device: 'field side, one unit: silent while its neighbours answer, or answering with a failure',
  network: 'field side, the IP path to a Modbus TCP device or TCP-to-RTU gateway',
  config: 'a configuration is wrong: at start-up (config file, device map, hardware profile, key file) it is refused before anything starts; on the field side, the device map asks a device for something it lacks',
  local: 'this gateway: disk and database, serial adapter, in-memory bounds, CPU temperature',
  cli: 'the command line',
  remote: 'a signed remote config or command over MQTT (docs/remote.md) was refused or undone: nothing of it stays applied and the running config is unchanged; the code and the reason are in `config/ack` (or `cmd/<name>/result`) and the log',
  'per code': 'a family: the class depends on the number, and the meaning says which',
} as const satisfies Record<string, string>;

export type CodeClass = keyof typeof CLASSES;

/** One entry. A list of classes means the case decides (the meaning says how). */
export interface CodeDoc {
  readonly class: CodeClass | readonly [CodeClass, CodeClass, ...CodeClass[]];
  readonly meaning: string;
  readonly action: string;
}

const SOCKET = ['link/soft', 'network'] as const;

export const CODES = {
  // Socket errors: from an uplink, or (class network) from a Modbus TCP connection.
  ETIMEDOUT: { class: SOCKET, meaning: 'the peer did not answer in time (connect or read)', action: 'check the path to the upstream or device; retried' },
  ECONNREFUSED: { class: SOCKET, meaning: 'nothing listens on the address', action: 'is the broker, collector, server or device up, and the port in `url` (or `tcpPort`) right?' },
  ECONNRESET: { class: SOCKET, meaning: 'the peer closed the connection mid-stream', action: 'a peer restart or a middlebox (firewall, NAT timeout); retried' },
  EHOSTUNREACH: { class: SOCKET, meaning: 'no route to the host', action: 'routing, the cellular link, the peer\'s address' },
  ENETUNREACH: { class: SOCKET, meaning: 'the network is down: no route at all', action: 'the network interface, the cellular modem' },
  ENOTFOUND: { class: SOCKET, meaning: 'the host name does not resolve', action: 'DNS, and the host name in `url` (or the bus `host`)' },
  EAI_AGAIN: { class: SOCKET, meaning: 'name resolution failed temporarily', action: 'is the DNS server reachable? retried' },
  EPIPE: { class: SOCKET, meaning: 'wrote to a connection the peer had closed', action: 'retried; if frequent, check the peer\'s connection limits and log' },
  TLS_CERT_INVALID: {
    class: 'link/hard',
    meaning: 'a TLS certificate was refused on either side: expired or not yet valid, unknown CA, self-signed, wrong host name, or the server refused our client certificate (or shares no cipher suite)',
    action: 'check the CA file (`caFile`, `tlsCaFile`), the certificates\' expiry and host name, the client certificate, `ciphers`, and the clock (boards without an RTC); then `holdfast breaker reset <uplink>`',
  },
  // MQTT uplinks
  MQTT_0xNN: {
    class: 'per code',
    meaning: 'an MQTT 5 reason code >= 0x80 from CONNACK, PUBACK or DISCONNECT, e.g. `MQTT_0x87` (not authorised). link/hard: 0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C (0x87 on PUBACK: an ACL change). payload/hard: PUBACK 0x90, 0x95, 0x99. link/soft: the rest (0x80, 0x83, 0x88, 0x89, 0x8B, 0x8D, 0x8E, 0x97, 0x9F and any unlisted one); busy and quota wait 5 s unless the broker says otherwise',
    action: 'link/hard: fix `username`, `passwordFile`, `clientId` or the broker\'s ACL, then `holdfast breaker reset <uplink>`; payload/hard: see `last_error` (0x95: lower `maxPacketBytes`), then `holdfast retry reset`; link/soft: retried',
  },
  MQTT_ACK_TIMEOUT: { class: 'link/soft', meaning: 'a QoS 1 PUBLISH got no PUBACK within the uplink\'s `ackTimeoutMs`', action: 'broker overloaded or link lossy; retried (a re-send keeps its key); raise `ackTimeoutMs` on slow links' },
  MQTT_DISCONNECTED: { class: 'link/soft', meaning: 'the MQTT connection dropped while a message was in flight', action: 'retried (a re-send keeps its key); if frequent, check `keepaliveS` and the broker\'s log' },
  // IEEE 2030.5 (HTTPS) uplinks
  HTTP_NNN: {
    class: 'per code',
    meaning: 'an HTTP status from an IEEE 2030.5 server, e.g. `HTTP_503`. link/soft: 5xx, 429, 404, 408 (Retry-After honoured). link/hard: 401, 403. payload/hard: 400, 413, 415, 422 and any other 4xx',
    action: 'link/soft: retried; link/hard: is the client certificate (`certFile`) registered with the server? then `holdfast breaker reset <uplink>`; payload/hard: see `last_error`, then `holdfast retry reset`',
  },
  // OTLP/gRPC uplinks; agent/policy/classify.ts GRPC_TABLE says why each has its class
  GRPC_UNAVAILABLE: { class: 'link/soft', meaning: 'the OTLP collector cannot take the export now (restarting, memory limiter); a `RetryInfo` delay is honoured', action: 'retried; if it lasts, check the collector' },
  GRPC_DEADLINE_EXCEEDED: { class: 'link/soft', meaning: 'no answer within the uplink\'s `timeoutMs`', action: 'slow path or overloaded collector; retried; raise `timeoutMs` if exports are large' },
  GRPC_RESOURCE_EXHAUSTED: {
    class: ['link/soft', 'payload/hard'],
    meaning: 'the collector is busy or rate-limits us (link/soft: waits for `RetryInfo`, else 5 s); "message larger than max" without `RetryInfo` is payload/hard: the batch never fits and is dead-lettered',
    action: 'busy: retried; too large: lower `batch.maxReadings` or raise the collector\'s `max_recv_msg_size_mib`, then `holdfast retry reset`',
  },
  GRPC_INVALID_ARGUMENT: { class: 'payload/hard', meaning: 'the collector refuses this batch as malformed; dead-lettered', action: 'see `last_error` and the collector\'s log; then `holdfast retry reset`' },
  GRPC_UNAUTHENTICATED: { class: 'link/hard', meaning: 'missing or wrong credentials (token in `headersFile`, client certificate); data held, alarm raised', action: 'fix the credentials, then `holdfast breaker reset <uplink>`' },
  GRPC_PERMISSION_DENIED: { class: 'link/hard', meaning: 'the credentials are valid but not allowed to export there (tenant, ACL); data held, alarm raised', action: 'fix the collector\'s authorisation, then `holdfast breaker reset <uplink>`' },
  GRPC_UNIMPLEMENTED: { class: 'link/hard', meaning: 'no OTLP `MetricsService/Export` at that address (wrong port, traces-only collector, no metrics pipeline)', action: 'fix `url` or the collector\'s pipelines, then `holdfast breaker reset <uplink>`' },
  GRPC_CANCELLED: { class: 'link/soft', meaning: 'the call was cut before it completed (the agent stopping, a proxy, the collector shutting down)', action: 'retried' },
  GRPC_ABORTED: { class: 'link/soft', meaning: 'the collector aborted the call (a conflict on its side)', action: 'retried' },
  GRPC_OUT_OF_RANGE: { class: 'link/soft', meaning: 'the collector refused a value or time as out of range', action: 'retried; if it repeats, the batch is dead-lettered at `RETRY_LIMIT_EXCEEDED`' },
  GRPC_DATA_LOSS: { class: 'link/soft', meaning: 'the collector reports unrecoverable data loss or corruption on its side', action: 'retried (our copy is intact); check the collector' },
  GRPC_UNKNOWN: { class: 'link/soft', meaning: 'the collector failed without saying why', action: 'retried; check the collector\'s log' },
  GRPC_NOT_FOUND: { class: 'link/soft', meaning: 'the collector or a proxy in front of it found no such resource', action: 'retried; check `url` and the routing of any proxy in front of the collector' },
  GRPC_ALREADY_EXISTS: { class: 'link/soft', meaning: 'the collector says it has this data already', action: 'retried until `RETRY_LIMIT_EXCEEDED`; check whether the collector dedupes on the `idempotency-key` metadata' },
  GRPC_FAILED_PRECONDITION: { class: 'link/soft', meaning: 'the collector is not in a state to accept the export', action: 'retried; check the collector' },
  GRPC_INTERNAL: { class: 'link/soft', meaning: 'an internal error in the collector or its pipeline', action: 'retried; check the collector\'s log' },
  GRPC_STATUS_NN: { class: 'link/soft', meaning: 'a gRPC status number without a name in this build, e.g. `GRPC_STATUS_17`', action: 'retried; report it so the classifier learns it' },
  // any uplink
  UPLINK_ERROR: { class: 'link/soft', meaning: 'an upstream failure the classifier does not know (an unlisted socket error, a status it cannot read)', action: 'retried; see `last_error` and report it so the classifier learns it' },
  RETRY_LIMIT_EXCEEDED: {
    class: 'task',
    meaning: 'a task used up its attempts (`retry.maxAttempts`) or its age (`retry.maxAgeMs`) and was dead-lettered; `last_error` starts with the last failure\'s code',
    action: 'fix that cause, then `holdfast retry reset` (same as `UPDATE recovery_tasks SET retry_count = 0 WHERE status = \'failed\'`)',
  },
  // store
  IDEMPOTENCY_KEY_COLLISION: { class: 'local', meaning: 'a batch arrived with an existing idempotency key but a different payload hash; refused, counted and recorded', action: 'investigate the source: a key must never be reused (the stored batch is untouched)' },
  STORAGE_FULL: {
    class: 'local',
    meaning: 'the store reached its budget: `store.maxBytes`, or the filesystem\'s free space down to `store.minFreeRatio` (a disk shared with other programs). Delivered data is reclaimed first (from 90 %), then `store.fullPolicy` applies: drop-oldest (dead letters, then the oldest batches of the lowest-priority uplinks), downsample (old readings merged into min/max/avg/count), or reject-new; every dropped reading is counted by uplink and reason',
    action: '`holdfast status` shows the budget and the drops; free disk space, raise `store.maxBytes`, fix the uplink that is not draining, or choose another `store.fullPolicy` (docs/storage.md)',
  },
  STORE_UNAVAILABLE: STORE_CODES.STORE_UNAVAILABLE,
  STORE_SALVAGED: {
    class: 'local',
    meaning: 'at start (or after a corruption) the database was missing, empty or unreadable while segment files were present: it was moved to `<dataDir>/quarantine/` (never deleted) and a new one built from every readable row and segment record; the event\'s detail (and `salvage.json` next to the quarantined file) counts what was recovered and what was lost. Batches of unknown state are sent again with their original keys',
    action: 'read the report (`holdfast status`, the `salvage` event); find out what emptied or damaged the database (disk errors in `dmesg`, a manual change); the quarantine folder can go once the report is understood',
  },
  INGEST_QUEUE_FULL: { class: 'local', meaning: 'the in-memory ingest queue (`store.maxQueuedReadings`) is full: the source is told to slow down, a refused field poll is dropped, and the refusal is counted', action: 'slow storage? check the disk; raise `store.maxQueuedReadings` if the bursts are expected' },
  PAYLOAD_UNREADABLE: STORE_CODES.PAYLOAD_UNREADABLE,
  INTERNAL_ERROR: { class: 'local', meaning: 'a timer or callback of the agent failed in a way no code anticipated (a bug); the agent caught it, logged it with its `site` and stack, recorded an event and went on', action: 'report it with the log line; the agent keeps running, and `holdfast_internal_errors_total` counts such failures by site' },
  SHUTDOWN_ACK_TIMEOUT: {
    class: 'local',
    meaning: 'at shutdown an uplink did not acknowledge the messages in flight within the grace (half of `shutdownTimeoutMs`); the connection was ended anyway and those batches stay pending, to be sent again (same key) after the restart',
    action: 'nothing is lost; if it happens at every stop, check the upstream (a broker that holds connections without acknowledging)',
  },
  SHUTDOWN_TIMEOUT: {
    class: 'local',
    meaning: 'a step of the stop (closing an uplink, the field buses, the HTTP server, the metrics export) did not finish in its share of `shutdownTimeoutMs`: the agent went on without it. If the whole stop was not done by `shutdownTimeoutMs`, the agent closed the store and exited with status 1 rather than wait to be killed',
    action: 'the log line names the step; committed data is safe. Report it if it repeats',
  },
  SCHEMA_TOO_NEW: STORE_CODES.SCHEMA_TOO_NEW,
  // configuration and start-up
  CONFIG_NOT_FOUND: { class: 'config', meaning: 'a configuration file (the config, a device map, a hardware profile) does not exist or cannot be read, or a profile name is unknown', action: 'the path (relative paths are resolved against the config file\'s folder) and permissions; `holdfast config validate <file>`' },
  CONFIG_PARSE: { class: 'config', meaning: 'a configuration file (the config, a device map, a hardware profile) is not valid JSON', action: 'fix the syntax at the position given; `holdfast config validate <file>`' },
  CONFIG_INVALID: { class: 'config', meaning: 'the configuration breaks the schema or a rule across keys (wrong type, unknown key, out of range, bad URL, key file problems); every problem is listed with its path', action: 'fix each listed key; docs/configuration.md documents every key' },
  CONFIG_REJECTED: { class: 'remote', meaning: 'a signed remote config (`config/set`) is refused as a whole, nothing of it applied: its payload is not a JSON object, sets a local-only key (`remote`, `gatewayId`, `dataDir`, `logFile`, `logLevel`), breaks the schema or a cross-key rule once merged onto the local file (each problem by path), or drops the remote channel\'s uplink; a bad local file is `CONFIG_INVALID`', action: 'fix the config (`holdfast config validate` on the merged file), sign it with a higher version and send it again' },
  REMOTE_TOO_LARGE: { class: 'remote', meaning: 'a `config/set` or `cmd/<name>` message is larger than `remote.maxMessageBytes`: refused unread (beyond twice that the broker does not deliver it at all: the MQTT Maximum Packet Size the agent announces)', action: 'send only the keys that change, or raise `remote.maxMessageBytes` in the local file' },
  REMOTE_MALFORMED: { class: 'remote', meaning: 'a remote message is not a JSON object with an integer `version` (`seq` for a command) >= 1 and a base64 `payload`, or a command\'s payload is not a JSON object', action: 'build messages with `holdfast config sign` / `holdfast cmd sign` (docs/remote.md)' },
  REMOTE_KEY_UNKNOWN: { class: 'remote', meaning: 'a remote message names no `keyId`, or one that is not in the local file\'s `remote.trustedKeys`', action: 'sign with a key the gateway trusts, or provision its public key in the local file (never remotely)' },
  REMOTE_SIGNATURE_INVALID: { class: 'remote', meaning: 'a remote message has no signature, or its Ed25519 signature does not verify over the signed bytes (kind, gateway id, version or command and sequence, SHA-256 of the payload): tampered, signed for another gateway, or with another key', action: 'sign again for this gateway (`--gateway`) with the key named by `keyId`; if nobody did, someone is probing the gateway' },
  REMOTE_REPLAY: { class: 'remote', meaning: 'a remote config\'s `version` (a command\'s `seq`) is not above the highest this gateway has taken, kept across restarts: a replay, an old message, or one retained on the broker', action: 'send it with a higher version (see the retained `config/state`) or sequence number' },
  REMOTE_BUSY: { class: 'remote', meaning: 'a config or command came while a config was being applied (switch and health check); one apply at a time, nothing queued', action: 'wait for the `config/ack` of the one being applied, then send it again' },
  REMOTE_ROLLED_BACK: { class: 'remote', meaning: 'a remote config was applied but failed its health check (an uplink did not connect or a device did not answer within `remote.healthDeadlineMs`), or did not start: the last known good config runs again; the reason names what failed', action: 'fix what the reason names, then send a config with a higher version' },
  REMOTE_COMMAND_UNKNOWN: { class: 'remote', meaning: 'a message came on `cmd/<name>` for a name that is not a command (status, breaker-reset, retry-reset, purge)', action: 'use one of those names' },
  REMOTE_COMMAND_FAILED: { class: 'remote', meaning: 'a verified remote command could not do its work: a missing or wrong argument (an unknown uplink, a bad duration) or the store is unavailable', action: 'fix the arguments per the reason; for the store see `STORE_UNAVAILABLE`' },
  REMOTE_STATE_UNWRITABLE: { class: 'local', meaning: '`<dataDir>/remote-state.json` (last known good, replay marks) cannot be read or written: a remote message that needs it is refused; at start the agent runs the local file', action: 'the data directory\'s disk and permissions' },
  DATA_DIR_INSECURE: STORE_CODES.DATA_DIR_INSECURE,
  KEY_FILE_MISSING: STORE_CODES.KEY_FILE_MISSING,
  KEY_FILE_INSECURE: STORE_CODES.KEY_FILE_INSECURE,
  KEY_INVALID: STORE_CODES.KEY_INVALID,
  // files the config names (drivers/files.ts): checked at load, checked again whenever read
  CONFIG_FILE_MISSING: {
    class: 'config',
    meaning: 'a file the config names (password, token, headers, key, certificate, device map) does not exist. At load the config is refused with the key\'s path; at run time (a file removed or being rotated) the uplink\'s connect fails with this code, is logged and recorded as an outage, and the lane retries with its backoff',
    action: 'restore the file at the path given (or fix the key); a running agent picks it up at its next connect',
  },
  CONFIG_FILE_NOT_REGULAR: { class: 'config', meaning: 'a path the config names (or the config itself) is a directory, device, FIFO or socket, not a regular file; it is refused without being read (a config of /dev/zero must not fill the memory)', action: 'point the key (or `--config`) at a regular file' },
  CONFIG_FILE_TOO_LARGE: { class: 'config', meaning: 'the config file is larger than 1 MiB, or a file it names is larger than its limit; refused without reading past the limit', action: 'is it the right file? a config or a credential is a few kilobytes' },
  CONFIG_PATH_LOOP: { class: 'config', meaning: 'a path the config names (`dataDir`, `logFile`, `spoolDir` or a file) is a symbolic link loop, or passes through one', action: 'fix the link (`ls -l` each part of the path) or the key' },
  CONFIG_FILE_UNREADABLE: { class: 'config', meaning: 'a file the config names exists but cannot be opened or read (`EACCES`, `EIO`: the errno is in the message)', action: 'permissions and ownership (the agent\'s user must read it), the disk' },
  SECRET_FILE_INSECURE: {
    class: 'config',
    meaning: 'a secret file (MQTT `passwordFile`, OTLP `headersFile` and `tlsKeyFile`, IEEE 2030.5 `keyFile`, `api.tokenFile`) is accessible to group or others; refused at load and whenever read',
    action: '`chmod 600 <file>` (the message names it)',
  },
  USAGE: { class: 'cli', meaning: 'the command line is wrong (unknown command or option, missing `--config`, unexpected argument); exit status 2', action: 'see `holdfast <command> --help`' },
  CONSOLE_UNAVAILABLE: { class: 'cli', meaning: '`holdfast console` cannot attach to the running agent\'s console socket (`console.socket`, default <dataDir>/console.sock): the agent is not running, `console.enabled` is false, or this user may not open the socket (mode 0600)', action: 'start the agent (pm2 status), check `console` in the config, run as the agent\'s user; on site, the serial console works without it (docs/console.md)' },
  // field side (agent/policy/faults.ts) and hardware
  MODBUS_TIMEOUT: {
    class: ['device', 'physical', 'network'],
    meaning: 'Modbus devices stopped answering within `timeoutMs`: device when one is silent while its neighbours answer; physical (RTU) or network (TCP) when every device on the bus is silent',
    action: 'device: power, unit id, its wiring; whole RTU bus: cable, termination, bias, adapter, serial settings; TCP: the gateway and the route to it',
  },
  MODBUS_CRC: { class: 'physical', meaning: 'too many Modbus RTU frames on one bus fail their CRC or framing (rate above the threshold over the last transactions)', action: 'noise or wiring: termination, shield grounding, cable runs; `baudRate`, `parity`, `stopBits` as the devices expect' },
  MODBUS_EXCEPTION_NN: {
    class: 'per code',
    meaning: 'a Modbus exception response, e.g. `MODBUS_EXCEPTION_02`. config: 01 illegal function, 02 illegal data address, 03 illegal data value (those points are reported and not polled, their read is re-probed on a slow jittered schedule, `buses[].reprobe`, and they are polled again once it is answered). device: 04 device failure, 05 acknowledge, 06 busy (05/06 polled again sooner) and any unlisted code. network: 0A/0B gateway path or target failed',
    action: 'config: fix the device map for this model; device: check the unit; network: the TCP-to-RTU gateway and the line behind it',
  },
  RS485_VOLTAGE_LOW: { class: 'physical', meaning: 'the RS-485 bus voltage (board ADC) is below its window (`buses[].voltage.min`): open bus, missing bias, a short', action: 'A/B wiring for shorts or breaks, bias resistors, termination' },
  RS485_VOLTAGE_HIGH: { class: 'physical', meaning: 'the RS-485 bus voltage (board ADC) is above its window (`buses[].voltage.max`)', action: 'a miswired supply or ground offset; sites that follow TIA-485-A (up to 6 V) widen `buses[].voltage.max`' },
  SERIAL_PORT_ERROR: { class: 'local', meaning: 'the serial port of an RTU bus failed or cannot be opened (`detail.errno`: ENOENT, EACCES, EIO)', action: 'adapter plugged in? bus `port` right? permissions (dialout group)?' },
  NETWORK_ERROR: { class: 'network', meaning: 'a Modbus TCP connection failed with an errno not in this catalogue (`detail.errno`)', action: 'the route to the device or gateway (`host`, `tcpPort`), and whether it accepts connections' },
  // clocks (docs/clocks.md)
  CLOCK_STEP: { class: 'local', meaning: 'the wall clock stepped (either way) by more than 1 s against the monotonic clock, while the agent ran or while it was stopped in the same boot: a `clock_step` event with `stepMs`; timers are unaffected, pending retry times and open events in the store moved with it, and stored retry times beyond the retry cap were brought back', action: 'usually NTP setting a clock that was wrong; frequent steps mean a bad RTC or two time sources fighting' },
  CLOCK_UNSYNCED: { class: 'local', meaning: 'the wall clock reads earlier than this release (not synchronised: a board without an RTC before NTP): readings are stamped with it but flagged `clock: "unsynced"` with their monotonic time, and re-based once the clock is good', action: 'check NTP (`timedatectl`, `chronyc tracking`) and the network path to the time server' },
  CLOCK_UNREBASABLE: { class: 'local', meaning: 'stored readings stamped by an unsynchronised clock cannot be re-based: their boot ended (a reboot) before its clock became good; they keep `clock: "unsynced"`', action: 'nothing to repair; their times are unknown. Give the board an RTC or start NTP before the agent' },
  THERMAL_THROTTLE: { class: 'local', meaning: 'the CPU is at or above `hardware.throttle.aboveC`: drain, retries and polling run at `factor` of their rates (live data never slowed) until it cools to `belowC`', action: 'cooling, airflow, the enclosure; watch `holdfast_throttle_factor`' },
} as const satisfies Record<string, CodeDoc>;

/** Compile-time check: an entry whose meaning or action is '' is named in an error here. */
type Blank<T> = { [K in keyof T]: T[K] extends { readonly meaning: '' } | { readonly action: '' } ? K : never }[keyof T];
type NoneOf<K extends never> = K;
export type CatalogueChecked = NoneOf<Blank<typeof CODES>>;
