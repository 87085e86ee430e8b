/**
 * The published JSON Schema of the configuration (`holdfast config schema` prints it).
 * The validator (agent/config/load.ts) compiles exactly this object, so the published schema
 * and the checks that run cannot drift apart. Defaults live here too. agent/config/types.ts
 * derives the config's TypeScript types from this object (json-schema-to-ts), which needs its
 * literal types: every part is `as const`, helpers included.
 */

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/**
 * A duration in ms, bounded above: Node arms a timer of more than 2^31-1 ms (~24.8 days) for
 * 1 ms, so `1e30` would turn a slow schedule into a busy loop. Each maximum is the largest value
 * that makes sense for its key.
 */
const ms = (min: number, max: number, def: number, description: string) => ({ type: 'integer', minimum: min, maximum: max, default: def, description }) as const;
const name = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' } as const;

const retry = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description: 'Retry policy. Env RETRY_STRATEGY overrides `strategy` for every uplink (a remote config that sets it wins: file < env < remote).',
  properties: {
    strategy: { enum: ['EXPONENTIAL_BACKOFF', 'DECORRELATED_JITTER', 'LINEAR', 'FIXED', 'ADAPTIVE'], default: 'EXPONENTIAL_BACKOFF', description: 'EXPONENTIAL_BACKOFF is full jitter; ADAPTIVE picks reconnect intervals from the uplink\'s outage history (docs/adaptive-retry.md); env RETRY_STRATEGY overrides it' },
    baseMs: ms(1, HOUR, 1000, 'scale of the first interval (EXPONENTIAL: up to baseMs; FIXED: baseMs +- jitter)'),
    maxMs: ms(1, DAY, 300000, 'ceiling of any interval'),
    reconnectMaxMs: ms(1, DAY, 3000, 'lower ceiling of the reconnect interval (min with maxMs, never below baseMs): the longest the uplink can take to notice a recovery; a fleet of N gateways makes up to N / (this / 2) connection attempts a second during an outage (docs/fleet.md)'),
    jitter: { type: 'number', minimum: 0, maximum: 1, default: 0.2, description: '+- fraction of jitter for LINEAR and FIXED' },
    maxAttempts: { type: 'integer', minimum: 1, default: 50, description: 'attempts before RETRY_LIMIT_EXCEEDED' },
    maxAgeMs: ms(1000, 30 * DAY, 7 * DAY, 'age of a task after which a failed attempt dead-letters it'),
    hardFailureHoldMs: ms(1000, DAY, 300000, 'wait after a hard link failure (bad credentials) before trying again'),
  },
} as const;

/** A bus's poll backoff: the uplinks' retry keys without the reconnect ceiling (a poll is not a reconnect). */
const { reconnectMaxMs: _reconnect, ...pollRetry } = retry.properties;

const breaker = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    windowMs: ms(100, HOUR, 60000, 'sliding window over which the failure rate is measured'),
    minCalls: { type: 'integer', minimum: 1, default: 5, description: 'calls in the window before the breaker may open' },
    failureRate: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5, description: 'link-failure fraction in the window that opens the breaker' },
    openMs: ms(100, HOUR, 3000, 'time open before half-open (jittered +-20%); also paces reconnects while open'),
    halfOpenProbes: { type: 'integer', minimum: 1, default: 3, description: 'successes in half-open before it closes' },
  },
} as const;

const drain = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    startJitterMs: ms(0, HOUR, 1000, 'random delay before the backlog drain starts after a recovery: spreads the first burst of the rate limit (the reconnects are spread by the backoff)'),
    readingsPerSec: { type: 'integer', minimum: 1, default: 20000, description: 'backlog drain rate limit in readings (live data is not limited)' },
    messagesPerSec: { type: 'integer', minimum: 1, default: 50, description: 'backlog drain rate limit in messages' },
    pullTasks: { type: 'integer', minimum: 1, maximum: 10000, default: 200, description: 'backlog tasks read from the store per query' },
  },
} as const;

const retryBudget = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    ratio: { type: 'number', minimum: 0, maximum: 10, default: 0.2, description: 'retries allowed per first attempt' },
    minPerSec: { type: 'number', minimum: 0, default: 1, description: 'retries always allowed per second' },
  },
} as const;

const mqttUplink = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'url'],
  properties: {
    name: { ...name, description: 'uplink name: recovery_tasks.uplink, status, breaker reset' },
    type: { const: 'mqtt' },
    enabled: { type: 'boolean', default: true, description: 'a disabled uplink gets no new tasks' },
    url: { type: 'string', pattern: '^(mqtt|mqtts|tcp|ssl|ws|wss)://', description: 'broker URL, e.g. mqtt://127.0.0.1:1883' },
    clientId: { type: 'string', minLength: 1, maxLength: 128, description: 'default holdfast-<gatewayId>-<name>' },
    username: { type: 'string', description: 'MQTT user name' },
    passwordFile: { type: 'string', minLength: 1, description: 'file holding the MQTT password (read at each connect)' },
    topicPrefix: { type: 'string', minLength: 1, pattern: '^[^#+]+$', description: 'default holdfast/<gatewayId>' },
    keepaliveS: { type: 'integer', minimum: 0, maximum: 65535, default: 30, description: 'MQTT keep-alive in seconds' },
    connectTimeoutMs: ms(100, 5 * MIN, 10000, 'CONNECT to CONNACK'),
    ackTimeoutMs: ms(100, 10 * MIN, 15000, 'PUBLISH to PUBACK'),
    maxPacketBytes: { type: 'integer', minimum: 1024, maximum: 268435455, default: 262144, description: 'batches are split below this and below the broker\'s Maximum Packet Size' },
    maxInflight: { type: 'integer', minimum: 1, maximum: 1000, default: 32, description: 'unacknowledged messages at once (also capped by the broker\'s Receive Maximum)' },
    priority: { type: 'integer', minimum: -1000, maximum: 1000, default: 0, description: 'when the store is full (store.fullPolicy drop-oldest or downsample), a batch still pending for an uplink of higher priority is kept longer' },
    retry,
    breaker,
    drain,
    retryBudget,
  },
} as const;

/** Fields every uplink type has. */
const common = <K extends string>(kind: K) => ({
  name: { ...name, description: 'uplink name: recovery_tasks.uplink, status, breaker reset' },
  type: { const: kind },
  enabled: { type: 'boolean', default: true, description: 'a disabled uplink gets no new tasks' },
  priority: { type: 'integer', minimum: -1000, maximum: 1000, default: 0, description: 'when the store is full (store.fullPolicy drop-oldest or downsample), a batch still pending for an uplink of higher priority is kept longer' },
  retry,
  breaker,
  drain,
  retryBudget,
}) as const;

const otlpUplink = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'url'],
  properties: {
    ...common('otlp'),
    url: { type: 'string', pattern: '^https?://', description: 'collector, e.g. http://127.0.0.1:4317 (https:// for TLS)' },
    headersFile: { type: 'string', minLength: 1, description: 'JSON file of gRPC metadata, e.g. {"authorization": "Bearer ..."} (mode 0600)' },
    tlsCaFile: { type: 'string', minLength: 1, description: 'CA bundle to trust (https://)' },
    tlsCertFile: { type: 'string', minLength: 1, description: 'client certificate for mTLS' },
    tlsKeyFile: { type: 'string', minLength: 1, description: 'client key for mTLS' },
    compression: { enum: ['none', 'gzip'], default: 'gzip' },
    timeoutMs: ms(100, 5 * MIN, 10000, 'deadline of each export call'),
    maxInflight: { type: 'integer', minimum: 1, maximum: 64, default: 4, description: 'export calls in flight' },
  },
} as const;

const sep2Uplink = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'url', 'certFile', 'keyFile', 'caFile'],
  properties: {
    ...common('sep2'),
    url: { type: 'string', pattern: '^https://', description: 'IEEE 2030.5 server, e.g. https://utility.example:8443' },
    dcapPath: { type: 'string', pattern: '^/', default: '/dcap', description: 'DeviceCapability path' },
    certFile: { type: 'string', minLength: 1, description: 'client certificate (PEM); LFDI and SFDI are derived from it' },
    keyFile: { type: 'string', minLength: 1, description: 'client key (PEM, mode 0600)' },
    caFile: { type: 'string', minLength: 1, description: 'CA that signed the server certificate' },
    ciphers: { type: 'string', minLength: 1, description: 'OpenSSL cipher list, e.g. ECDHE-ECDSA-AES128-CCM8 (the suite 2030.5 requires)' },
    pen: { type: 'integer', minimum: 0, maximum: 4294967295, default: 0, description: 'IANA Private Enterprise Number in the low 32 bits of every mRID (0: unregistered)' },
    timeoutMs: ms(100, 5 * MIN, 15000, 'per HTTPS request'),
    maxInflight: { type: 'integer', minimum: 1, maximum: 1, default: 1, description: 'one post at a time (postRate is per device)' },
  },
} as const;

const simulatedSource = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'device'],
  properties: {
    type: { const: 'simulated' },
    device: { ...name, description: 'device name in every reading' },
    intervalMs: ms(1, HOUR, 1000, 'poll interval'),
    points: { type: 'integer', minimum: 1, maximum: 1000, default: 4, description: 'readings per poll; the first is the counter' },
    stopAfter: { type: 'integer', minimum: 1, description: 'stop when the counter reaches this value (tests, benchmarks)' },
  },
} as const;

const fieldDevice = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'map'],
  properties: {
    name: { ...name, description: 'device name in every reading' },
    unitId: { type: 'integer', minimum: 0, maximum: 255, default: 1, description: 'Modbus unit (slave) id' },
    map: { type: 'string', minLength: 1, description: 'device map JSON file (config/devices/), or "sunspec" to discover the SunSpec models' },
    pollMs: ms(10, DAY, 1000, 'poll period (fixed-rate schedule)'),
    timeoutMs: { type: 'integer', minimum: 10, maximum: MIN, description: 'per-request timeout (default: the bus\'s)' },
    coalesceGap: { type: 'integer', minimum: 0, maximum: 100, description: 'unmapped registers a coalesced read may bridge (default: the map\'s, else 0)' },
  },
} as const;

const bus = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'devices'],
  properties: {
    name: { ...name, description: 'bus name (faults, status, board profile voltage source)' },
    type: { enum: ['rtu', 'tcp'], description: 'rtu: a serial RS-485 line; tcp: one Modbus TCP endpoint (a device or a TCP-to-RTU gateway)' },
    port: { type: 'string', minLength: 1, description: 'rtu: serial device, e.g. /dev/ttyUSB0 (or a profile port name)' },
    baudRate: { type: 'integer', enum: [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200], default: 9600 },
    parity: { enum: ['none', 'even', 'odd'], default: 'none', description: 'rtu' },
    dataBits: { enum: [7, 8], default: 8, description: 'rtu' },
    stopBits: { enum: [1, 2], default: 1, description: 'rtu' },
    frameGapMs: ms(1, SEC, 20, 'rtu: silence that ends a short frame (at least t3.5; USB adapters deliver in bursts)'),
    host: { type: 'string', minLength: 1, description: 'tcp: host name or address' },
    tcpPort: { type: 'integer', minimum: 1, maximum: 65535, default: 502, description: 'tcp port' },
    connectTimeoutMs: ms(100, MIN, 3000, 'tcp connect timeout'),
    timeoutMs: ms(10, MIN, 1000, 'per-request timeout'),
    maxQueue: { type: 'integer', minimum: 1, maximum: 10000, default: 256, description: 'queued requests per bus; beyond it polls are refused and counted' },
    voltage: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'rtu: the RS-485 bus-voltage window (read from the board profile\'s ADC)',
      properties: {
        min: { type: 'number', default: 2.5, description: 'volts; the site manual\'s figure (TIA-485-A allows 1.5 V under load)' },
        max: { type: 'number', default: 5, description: 'volts (TIA-485-A: 6 V)' },
        pollMs: ms(100, HOUR, 1000, 'how often the bus voltage is read'),
      },
    },
    retry: { ...retry, properties: pollRetry, description: 'backoff of failed polls (same module as the uplinks)' },
    reprobe: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'points a device refuses with exception 01/02/03 stop being polled; their read is tried again on its own after baseMs, then twice as long after each refusal up to maxMs (jittered), and they are polled again once it is answered',
      properties: {
        baseMs: ms(1000, DAY, 60000, 'first re-probe after the refusal'),
        maxMs: ms(1000, DAY, 3600000, 'ceiling of the doubling re-probe delay'),
        jitter: { type: 'number', minimum: 0, maximum: 0.5, default: 0.2, description: '+- fraction of jitter on every re-probe delay' },
      },
    },
    devices: { type: 'array', minItems: 1, items: fieldDevice },
  },
} as const;

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://holdfast.invalid/config.schema.json',
  title: 'Holdfast configuration',
  type: 'object',
  additionalProperties: false,
  required: ['gatewayId', 'dataDir', 'uplinks'],
  properties: {
    $schema: { type: 'string' },
    gatewayId: { ...name, description: 'this gateway; in MQTT topics (holdfast/<gatewayId>/...) and messages' },
    dataDir: { type: 'string', minLength: 1, description: 'created 0700; refused if group/world accessible' },
    logFile: { type: 'string', default: '/var/log/recovery/engine.log', description: '"-" logs to stdout' },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info', description: 'pino log level' },
    spoolDir: { type: 'string', minLength: 1, description: 'the same as store.spoolDir (kept for configs written before it); give one or the other, or the same path in both' },
    shutdownTimeoutMs: ms(1000, MIN, 7000, 'SIGTERM/SIGINT: the stop (last commit, in-flight acknowledgements, offline status, store closed) ends within this, whatever an upstream does; keep it below the launcher\'s kill timeout (pm2 kill_timeout is 10 s in ecosystem.config.js)'),
    sweepIntervalMs: ms(100, HOUR, 5000, 'how often the sweeper re-admits reset tasks and reads admin requests'),
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        encryption: { enum: ['aes-256-gcm', 'off'], default: 'aes-256-gcm', description: 'payload encryption at rest; "off" must be said explicitly' },
        keyFile: { type: 'string', minLength: 1, default: '/etc/holdfast/holdfast.key', description: 'keyring written by holdfast keygen (mode 0600)' },
        keyId: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,32}$', default: 'k1', description: 'key that new batches are written with' },
        commitIntervalMs: ms(1, MIN, 200, 'group commit: readings wait at most this long for their transaction'),
        synchronous: { enum: ['OFF', 'NORMAL', 'FULL'], default: 'NORMAL', description: 'SQLite synchronous level: the power-loss trade-off (docs/durability.md)' },
        busyTimeoutMs: ms(0, 10 * MIN, 5000, 'SQLite busy timeout'),
        maxQueuedReadings: { type: 'integer', minimum: 100, default: 200000, description: 'bound of the in-memory ingest queue (INGEST_QUEUE_FULL beyond)' },
        retentionDays: { type: 'number', exclusiveMinimum: 0, maximum: 3650, default: 7, description: 'delivered and dead-lettered tasks older than this are purged' },
        purgeCron: { type: 'string', minLength: 9, default: '17 3 * * *', description: 'node-cron expression; a random 0-10 min delay is added' },
        maxBytes: { type: 'integer', minimum: 0, default: 0, description: 'byte quota of the store (database, WAL and segment files); 0: no quota, only the filesystem\'s free space (minus minFreeRatio) bounds it (docs/storage.md)' },
        minFreeRatio: { type: 'number', minimum: 0, maximum: 0.5, default: 0.05, description: 'fraction of the filesystem kept free for the rest of the system: below it the store is full, as at maxBytes' },
        fullPolicy: { enum: ['drop-oldest', 'downsample', 'reject-new'], default: 'drop-oldest', description: 'what happens when the store is full (STORAGE_FULL), after delivered data is reclaimed: drop the oldest data (dead letters first, then by uplink priority), downsample old readings, or refuse new batches; every dropped reading is counted' },
        downsampleMs: ms(1000, 24 * HOUR, 60000, 'fullPolicy downsample: old readings of a point are merged into min/max/avg/count over intervals of this length'),
        spoolDir: { type: 'string', minLength: 1, default: '/tmp/recovery_cache', description: 'where batches go while the store is unavailable (STORE_UNAVAILABLE); imported back once it works (docs/storage.md). Put it on another filesystem than dataDir' },
        spoolMaxBytes: { type: 'integer', minimum: 1048576, default: 67108864, description: 'bound of the spool; beyond it new batches are refused and counted' },
      },
    },
    batch: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxReadings: { type: 'integer', minimum: 1, maximum: 100000, default: 500, description: 'a batch is closed when it holds this many readings' },
        maxAgeMs: ms(1, HOUR, 1000, 'a batch is closed at this age even if not full'),
      },
    },
    sources: { type: 'array', default: [], items: simulatedSource, description: 'simulated sources (demo and tests)' },
    hardware: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        profile: { type: 'string', minLength: 1, default: 'generic-linux', description: 'board profile name (hardware/profiles/) or file' },
        sysfsRoot: { type: 'string', minLength: 1, default: '/', description: 'root under which every sysfs path is read (tests use a fake tree)' },
        throttle: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'thermal governor: above aboveC the backlog drain, retries and field polling run at `factor` of their rates (live data is never slowed)',
          properties: {
            aboveC: { type: 'number', minimum: 0, maximum: 150, default: 75, description: 'throttle at or above this CPU temperature (C)' },
            belowC: { type: 'number', minimum: 0, maximum: 150, default: 70, description: 'release at or below this (C); must be below aboveC' },
            factor: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.25, description: 'fraction of the configured rates kept while throttled' },
            minDwellMs: ms(0, HOUR, 30000, 'least time in a state before the temperature may change it'),
            sampleMs: ms(1000, 10 * MIN, 10000, 'temperature sample interval (jittered +-10%)'),
          },
        },
      },
    },
    buses: { type: 'array', default: [], items: bus, description: 'Modbus buses and their devices' },
    api: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'the local HTTP server: /metrics, /healthz, /readyz and the admin API',
      properties: {
        enabled: { type: 'boolean', default: true },
        listen: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'bind address; anything but loopback needs `allow`' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 9090, description: '0 = any free port (logged)' },
        allow: { type: 'array', default: [], items: { type: 'string', pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$' }, description: 'CIDR allow-list of clients (default: loopback only)' },
        tokenFile: { type: 'string', minLength: 1, description: 'bearer token for /api/* (file mode 0600); without it the admin API refuses everything' },
        maxConnections: {
          type: 'integer', minimum: 1, maximum: 1000, default: 64,
          description: 'open connections at most (each is a file descriptor: keep it well below `ulimit -n`); at the cap a new connection takes the slot of the oldest one open 0.5 s without a request in progress, or is closed at once when there is none',
        },
        headersTimeoutMs: ms(1000, MIN, 5000, 'a client must send its whole request head within this (then 408 and closed; the whole request gets twice this)'),
        idleTimeoutMs: ms(500, MIN, 2000, 'a connection without a request is closed after this: before its first request and between keep-alive requests'),
      },
    },
    console: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'the technician console (docs/console.md): one line-oriented console on a serial port and on a local Unix socket (`holdfast console`)',
      properties: {
        enabled: { type: 'boolean', default: true },
        serialPort: { type: 'string', minLength: 1, description: 'serial device of the console (e.g. /dev/ttyS0); absent: the Unix socket only. Never a port an RTU bus uses' },
        baudRate: { type: 'integer', enum: [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200], default: 9600, description: 'console line speed (8N1); output is paced to it' },
        socket: { type: 'string', minLength: 1, description: 'Unix socket of `holdfast console` (mode 0600); default <dataDir>/console.sock' },
        idleLogoutS: { type: 'integer', minimum: 10, maximum: 86400, default: 600, description: 'a logged-in session without input for this long is logged out' },
        lockout: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'after `failures` wrong passwords in a row, logins are refused for firstS seconds, doubling at each further failure up to maxS (kept across reconnects and restarts)',
          properties: {
            failures: { type: 'integer', minimum: 1, maximum: 100, default: 3 },
            firstS: { type: 'integer', minimum: 1, maximum: 3600, default: 30 },
            maxS: { type: 'integer', minimum: 1, maximum: 86400, default: 3600 },
          },
        },
      },
    },
    selfMetrics: {
      type: 'object',
      additionalProperties: false,
      required: ['uplink'],
      description: 'the agent\'s own metrics (what /metrics shows) exported over OTLP/gRPC; absent: not exported. Never stored or retried: a failed export is logged (rarely) and counted',
      properties: {
        uplink: { ...name, description: 'name of an uplink of type otlp: its url, TLS files, headersFile and compression are used (a disabled one carries only these metrics)' },
        intervalMs: ms(1000, DAY, 60000, 'mean time between exports; each interval is jittered, and the first export comes at a random point of the first interval'),
        jitter: { type: 'number', minimum: 0, maximum: 0.5, default: 0.2, description: '+- fraction of jitter on every interval (a fleet must not export in step)' },
        timeoutMs: ms(100, 5 * MIN, 10000, 'deadline of one export'),
      },
    },
    remote: {
      type: 'object',
      additionalProperties: false,
      required: ['trustedKeys'],
      description: 'signed remote configuration and commands over MQTT (docs/remote.md); absent: off. Set in the local file only: a remote config may not change it',
      properties: {
        uplink: { ...name, description: 'the MQTT uplink whose connection carries config/set and cmd/<name> (default: the first enabled MQTT uplink); a remote config must keep it' },
        trustedKeys: {
          type: 'object',
          minProperties: 1,
          propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          additionalProperties: { type: 'string', minLength: 40, maxLength: 1000 },
          description: 'key id -> Ed25519 public key (PEM, or the base64 of its SPKI DER; `holdfast keypair` writes both) that may sign configs and commands',
        },
        maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 4194304, default: 262144, description: 'a config/set or cmd message larger than this is refused unread (REMOTE_TOO_LARGE); beyond twice this the broker does not even deliver it' },
        healthDeadlineMs: ms(1000, 10 * MIN, 30000, 'after a switch, the uplinks must connect and the devices answer within this, or the last known good config is restored'),
      },
    },
    uplinks: {
      type: 'array',
      description: 'upstreams; each batch gets one task per enabled uplink',
      items: { type: 'object', required: ['type'], properties: { type: { enum: ['mqtt', 'otlp', 'sep2'] } }, discriminator: { propertyName: 'type' }, oneOf: [mqttUplink, otlpUplink, sep2Uplink] },
    },
  },
} as const;
