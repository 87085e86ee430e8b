/**
 * Schema migrations, applied in order; `PRAGMA user_version` is the number applied.
 * Never edit a migration that has shipped: append a new one.
 *
 * recovery_tasks.retry_count is the number of attempts made. A task is only ever dead-lettered
 * (status 'failed') after an attempt, so a failed task with retry_count = 0 is one an operator
 * reset: `UPDATE recovery_tasks SET retry_count = 0 WHERE status = 'failed'`; the sweeper
 * re-admits exactly those.
 */
export const MIGRATIONS: readonly string[] = [
  /* 1: the outbox */ `
  CREATE TABLE payloads (
    id            INTEGER PRIMARY KEY,            -- also the batch's seq
    batch_key     TEXT    NOT NULL UNIQUE,        -- idempotency key
    payload_hash  BLOB    NOT NULL,               -- sha256 of the plaintext JSON
    device        TEXT    NOT NULL,
    reading_count INTEGER NOT NULL,
    first_ts      INTEGER NOT NULL,
    last_ts       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    codec         TEXT    NOT NULL,               -- 'zlib' | 'zlib+aes256gcm'
    key_id        TEXT,
    iv            BLOB,
    tag           BLOB,
    body          BLOB    NOT NULL
  );

  CREATE TABLE recovery_tasks (
    id                       INTEGER PRIMARY KEY,
    payload_id               INTEGER NOT NULL REFERENCES payloads(id),
    uplink                   TEXT    NOT NULL,
    idempotency_key          TEXT    NOT NULL,
    status                   TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','failed','delivered')),
    retry_count              INTEGER NOT NULL DEFAULT 0,
    next_attempt_at          INTEGER NOT NULL DEFAULT 0,
    last_error_code          TEXT,
    last_error               TEXT,
    fault_class              TEXT,
    retry_class              TEXT CHECK (retry_class IN ('soft','hard')),
    request_timestamp        INTEGER,
    acknowledgment_timestamp INTEGER,
    latency_ms               INTEGER,
    first_attempt_at         INTEGER,
    created_at               INTEGER NOT NULL,
    reading_count            INTEGER NOT NULL,
    UNIQUE (payload_id, uplink)
  );
  CREATE INDEX recovery_tasks_pending ON recovery_tasks (uplink, id) WHERE status = 'pending';
  CREATE INDEX recovery_tasks_failed ON recovery_tasks (retry_count) WHERE status = 'failed';

  CREATE TABLE recovery_events (
    id          INTEGER PRIMARY KEY,
    scope       TEXT    NOT NULL,                 -- 'uplink' | 'store' | 'device' | 'bus'
    subject     TEXT    NOT NULL,                 -- uplink name, device, bus
    kind        TEXT    NOT NULL,                 -- 'outage' | 'alarm' | 'collision' | 'dead_letter' | 'readmit' | 'breaker' | 'purge'
    code        TEXT,
    fault_class TEXT,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    duration_ms INTEGER,
    detail      TEXT
  );
  CREATE INDEX recovery_events_open ON recovery_events (scope, subject, kind) WHERE ended_at IS NULL;

  CREATE TABLE link_state (
    uplink          TEXT PRIMARY KEY,
    connected       INTEGER NOT NULL DEFAULT 0,
    breaker         TEXT    NOT NULL DEFAULT 'closed',
    breaker_since   INTEGER,
    last_error_code TEXT,
    last_error      TEXT,
    last_error_at   INTEGER,
    updated_at      INTEGER NOT NULL
  );

  CREATE TABLE admin_requests (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,                  -- 'breaker_reset'
    uplink     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    done_at    INTEGER
  );

  CREATE TABLE source_state (
    device TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL
  );

  CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  `,
  /* 2: the retry index that store/tasks.ts due() relies on (tasks waiting for a retry, by time) */ `
  CREATE INDEX recovery_tasks_due ON recovery_tasks (uplink, next_attempt_at) WHERE status = 'pending' AND next_attempt_at > 0;
  `,
  /*
   * 3: bodies in segment files (store/segments.ts). A new row holds where its body is and an
   * empty `body` (the column stays NOT NULL: changing that would rebuild the table, i.e. rewrite
   * every stored body); rows from before keep their body in the row (body_segment NULL) and stay
   * readable. No index: the segments referred to are only looked up at open and after a purge.
   */ `
  ALTER TABLE payloads ADD COLUMN body_segment INTEGER;   -- segments/<id>.seg; NULL: the body is in the row
  ALTER TABLE payloads ADD COLUMN body_offset  INTEGER;
  ALTER TABLE payloads ADD COLUMN body_length  INTEGER;
  `,
  /*
   * 4: clocks (docs/clocks.md). clock_boots: per boot, the wall clock's offset over the monotonic
   * clock (wall - mono) last seen and whether the wall clock was good (at or above the floor)
   * then, and the last good offset. clock_batches: batches holding readings stamped by an
   * unsynchronised clock, until re-based.
   */ `
  CREATE TABLE clock_boots (
    boot_id        TEXT PRIMARY KEY,
    offset_ms      INTEGER NOT NULL,              -- wall - mono (ms), last seen
    synced         INTEGER NOT NULL,              -- 1: the wall clock was at or above the floor then
    good_offset_ms INTEGER,                       -- the last offset seen with a good wall clock; NULL: never good
    updated_at     INTEGER NOT NULL
  );
  CREATE TABLE clock_batches (
    payload_id INTEGER PRIMARY KEY REFERENCES payloads(id) ON DELETE CASCADE,
    boot_id    TEXT    NOT NULL,                  -- the boot whose monotonic clock the readings carry
    readings   INTEGER NOT NULL,                  -- readings flagged unsynced
    state      TEXT    NOT NULL CHECK (state IN ('unsynced','rebased','kept','unrebasable'))
  );
  CREATE INDEX clock_batches_unsynced ON clock_batches (payload_id) WHERE state = 'unsynced';
  `,
  /*
   * 5: downsampled batches. The storage policy `downsample` (agent/storage/) replaces old batches
   * by summaries (min/max/avg/count per point and interval); a summary is not downsampled again.
   */ `
  ALTER TABLE payloads ADD COLUMN downsampled INTEGER NOT NULL DEFAULT 0;
  `,
  /*
   * 6: ids are never used twice (AUTOINCREMENT). Without it SQLite gives a new row the highest id
   * + 1, so deleting the newest rows (reclaiming the newest segment file) handed their ids to the
   * next batches: below the lane's live cursor and its backlog's end, never sent until a
   * reconnect. The two tables are rebuilt as they are, with their ids (run with foreign keys off:
   * store/db.ts migrate()).
   */ `
  CREATE TABLE payloads_v6 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- also the batch's seq
    batch_key     TEXT    NOT NULL UNIQUE,
    payload_hash  BLOB    NOT NULL,
    device        TEXT    NOT NULL,
    reading_count INTEGER NOT NULL,
    first_ts      INTEGER NOT NULL,
    last_ts       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    codec         TEXT    NOT NULL,
    key_id        TEXT,
    iv            BLOB,
    tag           BLOB,
    body          BLOB    NOT NULL,
    body_segment  INTEGER,
    body_offset   INTEGER,
    body_length   INTEGER,
    downsampled   INTEGER NOT NULL DEFAULT 0
  );
  INSERT INTO payloads_v6 SELECT id, batch_key, payload_hash, device, reading_count, first_ts, last_ts, created_at, codec, key_id, iv, tag, body,
    body_segment, body_offset, body_length, downsampled FROM payloads;

  CREATE TABLE recovery_tasks_v6 (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    payload_id               INTEGER NOT NULL REFERENCES payloads(id),
    uplink                   TEXT    NOT NULL,
    idempotency_key          TEXT    NOT NULL,
    status                   TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','failed','delivered')),
    retry_count              INTEGER NOT NULL DEFAULT 0,
    next_attempt_at          INTEGER NOT NULL DEFAULT 0,
    last_error_code          TEXT,
    last_error               TEXT,
    fault_class              TEXT,
    retry_class              TEXT CHECK (retry_class IN ('soft','hard')),
    request_timestamp        INTEGER,
    acknowledgment_timestamp INTEGER,
    latency_ms               INTEGER,
    first_attempt_at         INTEGER,
    created_at               INTEGER NOT NULL,
    reading_count            INTEGER NOT NULL,
    UNIQUE (payload_id, uplink)
  );
  INSERT INTO recovery_tasks_v6 SELECT id, payload_id, uplink, idempotency_key, status, retry_count, next_attempt_at, last_error_code, last_error,
    fault_class, retry_class, request_timestamp, acknowledgment_timestamp, latency_ms, first_attempt_at, created_at, reading_count FROM recovery_tasks;

  DROP TABLE recovery_tasks;
  DROP TABLE payloads;
  ALTER TABLE payloads_v6 RENAME TO payloads;
  ALTER TABLE recovery_tasks_v6 RENAME TO recovery_tasks;
  CREATE INDEX recovery_tasks_pending ON recovery_tasks (uplink, id) WHERE status = 'pending';
  CREATE INDEX recovery_tasks_failed ON recovery_tasks (retry_count) WHERE status = 'failed';
  CREATE INDEX recovery_tasks_due ON recovery_tasks (uplink, next_attempt_at) WHERE status = 'pending' AND next_attempt_at > 0;
  `,
];
