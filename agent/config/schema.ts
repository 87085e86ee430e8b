/**
 * The published JSON Schema of the configuration (`holdfast config schema` prints it).
 * The validator (agent/config/load.ts) compiles exactly this object, so the published schema
 * and the checks that run cannot drift apart. Defaults live here too.
 */

const ms = (min: number, def: number, description: string) => ({ type: 'integer', minimum: min, default: def, description });
const name = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' };

const retry = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description: 'Retry policy. Env RETRY_STRATEGY overrides `strategy` for every uplink.',
  properties: {
    strategy: { enum: ['EXPONENTIAL_BACKOFF', 'DECORRELATED_JITTER', 'LINEAR', 'FIXED'], default: 'EXPONENTIAL_BACKOFF' },
    baseMs: ms(1, 1000, 'first retry interval (and the floor of every interval)'),
    maxMs: ms(1, 300000, 'ceiling of any interval'),
    jitter: { type: 'number', minimum: 0, maximum: 1, default: 0.2, description: '+- fraction of jitter for LINEAR and FIXED' },
    maxAttempts: { type: 'integer', minimum: 1, default: 50, description: 'attempts before RETRY_LIMIT_EXCEEDED' },
    maxAgeMs: ms(1000, 7 * 24 * 3600 * 1000, 'age of a task after which a failed attempt dead-letters it'),
    hardFailureHoldMs: ms(1000, 300000, 'wait after a hard link failure (bad credentials) before trying again'),
  },
} as const;

const breaker = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    windowMs: ms(100, 60000, 'sliding window over which the failure rate is measured'),
    minCalls: { type: 'integer', minimum: 1, default: 5, description: 'calls in the window before the breaker may open' },
    failureRate: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: 0.5 },
    openMs: ms(100, 30000, 'time open before half-open (jittered +-20%)'),
    halfOpenProbes: { type: 'integer', minimum: 1, default: 3, description: 'successes in half-open before it closes' },
  },
} as const;

const drain = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    startJitterMs: ms(0, 30000, 'random delay before the backlog drain starts after a recovery'),
    readingsPerSec: { type: 'integer', minimum: 1, default: 20000 },
    messagesPerSec: { type: 'integer', minimum: 1, default: 50 },
    pullTasks: { type: 'integer', minimum: 1, maximum: 10000, default: 200 },
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
    name,
    type: { const: 'mqtt' },
    enabled: { type: 'boolean', default: true },
    url: { type: 'string', pattern: '^(mqtt|mqtts|tcp|ssl|ws|wss)://' },
    clientId: { type: 'string', minLength: 1, maxLength: 128 },
    username: { type: 'string' },
    passwordFile: { type: 'string', minLength: 1 },
    topicPrefix: { type: 'string', minLength: 1, pattern: '^[^#+]+$', description: 'default holdfast/<gatewayId>' },
    keepaliveS: { type: 'integer', minimum: 0, maximum: 65535, default: 30 },
    connectTimeoutMs: ms(100, 10000, 'CONNECT to CONNACK'),
    ackTimeoutMs: ms(100, 15000, 'PUBLISH to PUBACK'),
    maxPacketBytes: { type: 'integer', minimum: 1024, maximum: 268435455, default: 262144 },
    maxInflight: { type: 'integer', minimum: 1, maximum: 1000, default: 32 },
    retry,
    breaker,
    drain,
    retryBudget,
  },
} as const;

const simulatedSource = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'device'],
  properties: {
    type: { const: 'simulated' },
    device: name,
    intervalMs: ms(1, 1000, 'poll interval'),
    points: { type: 'integer', minimum: 1, maximum: 1000, default: 4 },
    stopAfter: { type: 'integer', minimum: 1, description: 'stop when the counter reaches this value (tests, benchmarks)' },
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
    gatewayId: name,
    dataDir: { type: 'string', minLength: 1, description: 'created 0700; refused if group/world accessible' },
    logFile: { type: 'string', default: '/var/log/recovery/engine.log', description: '"-" logs to stdout' },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info' },
    spoolDir: { type: 'string', default: '/tmp/recovery_cache' },
    sweepIntervalMs: ms(100, 5000, 'how often the sweeper re-admits reset tasks and reads admin requests'),
    store: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        encryption: { enum: ['aes-256-gcm', 'off'], default: 'aes-256-gcm' },
        keyFile: { type: 'string', minLength: 1, default: '/etc/holdfast/holdfast.key' },
        keyId: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,32}$', default: 'k1' },
        commitIntervalMs: ms(1, 200, 'group commit: readings wait at most this long for their transaction'),
        synchronous: { enum: ['OFF', 'NORMAL', 'FULL'], default: 'NORMAL' },
        busyTimeoutMs: ms(0, 5000, 'SQLite busy timeout'),
        maxQueuedReadings: { type: 'integer', minimum: 100, default: 200000 },
        retentionDays: { type: 'number', exclusiveMinimum: 0, default: 7 },
        purgeCron: { type: 'string', minLength: 9, default: '17 3 * * *', description: 'node-cron expression; a random 0-10 min delay is added' },
      },
    },
    batch: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxReadings: { type: 'integer', minimum: 1, maximum: 100000, default: 500 },
        maxAgeMs: ms(1, 1000, 'a batch is closed at this age even if not full'),
      },
    },
    sources: { type: 'array', default: [], items: simulatedSource },
    uplinks: { type: 'array', items: mqttUplink },
  },
} as const;
