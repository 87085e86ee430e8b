/**
 * The codes the store raises, each with its class, what it means and what the operator does
 * (agent/error-catalogue.ts gathers every room's codes for docs/errors.md and the tests), and
 * the error that carries one. The agent recognises a StoreError as a HoldfastError by a shared
 * symbol (agent/errors.ts), so the store need not import the agent.
 */

/** The mark of a coded error of any room (Symbol.for: one symbol across modules). */
export const CODED_ERROR = Symbol.for('holdfast.coded-error');

export const STORE_CODES = {
  STORE_UNAVAILABLE: {
    class: 'local',
    meaning: 'the store cannot be written (`detail.kind`: full, readonly, io, corrupt, vanished, busy): disk full (SQLITE_FULL, ENOSPC), I/O error (SQLITE_IOERR, EIO), read-only (EROFS after an ext4 error), the data directory removed or replaced, corrupt. New batches go to the spool (`store.spoolDir`), still sent when a link is up, and are imported back exactly once when the store works again; /readyz is false meanwhile. Also: a data directory that does not exist for an admin command, or a spool that cannot be written (its batches dropped and counted)',
    action: 'check the disk (`dmesg`, free space, a read-only remount: fsck and remount), that `dataDir` exists; the agent retries by itself and imports the spool (docs/storage.md)',
  },
  PAYLOAD_UNREADABLE: { class: 'payload/hard', meaning: 'a stored batch failed decryption, decompression or decoding (wrong or missing key, corrupted row); the fault is here, not upstream; dead-lettered', action: 'a key missing from the key file? restore it, then `holdfast retry reset`' },
  SCHEMA_TOO_NEW: { class: 'local', meaning: 'the database was written by a newer Holdfast (its `user_version` is ahead of this build)', action: 'upgrade Holdfast to at least the version that wrote it' },
  DATA_DIR_INSECURE: { class: 'config', meaning: 'the data directory is accessible to group or others (must be 0700), or the spool folder (`store.spoolDir`) is not a private directory of the agent\'s own user (a symlink, another owner, other users may read it)', action: '`chmod 700 <dataDir>`; for the spool: remove or fix the folder so that it is a plain directory of the agent\'s user, mode 0700' },
  KEY_FILE_MISSING: { class: 'config', meaning: 'encryption is on (the default) but `store.keyFile` does not exist', action: '`holdfast keygen --out <keyFile>`, or set `store.encryption` to "off" explicitly' },
  KEY_FILE_INSECURE: { class: 'config', meaning: 'the key file is accessible to group or others (must be 0600)', action: '`chmod 600 <keyFile>`' },
  KEY_INVALID: { class: 'config', meaning: 'the key file has a line that is not `<keyId> <64 hex>`, no key at all, or no key with the id `store.keyId`', action: 'fix the line or `store.keyId`; keep old keys in the file while stored batches need them' },
} as const;

/** A code the store raises: its own, or the command line's USAGE (keygen's arguments). */
export type StoreCode = keyof typeof STORE_CODES | 'USAGE';

export class StoreError extends Error {
  readonly [CODED_ERROR] = true;
  /** The file, directory or value at fault, when there is one. */
  readonly at?: string;
  constructor(readonly code: StoreCode, message: string, at?: string, options?: { cause?: unknown }) {
    super(at ? `${code}: ${at}: ${message}` : `${code}: ${message}`, options);
    this.name = 'HoldfastError';
    this.at = at;
  }
}
