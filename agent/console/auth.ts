/**
 * The console password: scrypt-hashed (random salt; N, r, p and the key length stored with the
 * hash, so they can be raised later without breaking old files) in <dataDir>/console-auth.json,
 * mode 0600, with the lockout state (agent/policy/lockout.ts) beside it so that a reconnect or a
 * restart does not reset a guesser's delay. No file means the factory default password, which
 * must be changed at the first login before any other command.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { NO_LOCKOUT, type LockoutState } from '../policy/lockout.js';

export const FACTORY_PASSWORD = 'holdfast';
export const AUTH_FILE = 'console-auth.json';
/** A new password: at least this long, and not the factory one. */
export const MIN_PASSWORD = 8;
/** scrypt cost: N 2^14 takes ~50 ms and 16 MB on a small ARM board. */
const PARAMS = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

interface Hash { algo: 'scrypt'; N: number; r: number; p: number; keylen: number; salt: string; hash: string }
interface AuthFile { version: 1; password: Hash | null; lockout: LockoutState }

function derive(pw: string, salt: Buffer, h: Pick<Hash, 'N' | 'r' | 'p' | 'keylen'>): Promise<Buffer> {
  const o: ScryptOptions = { N: h.N, r: h.r, p: h.p, maxmem: 128 * h.N * h.r * 2 };
  return new Promise((res, rej) => scrypt(pw, salt, h.keylen, o, (e, k) => (e ? rej(e) : res(k))));
}

export class ConsoleAuth {
  readonly file: string;
  private state: AuthFile;

  constructor(dataDir: string) {
    this.file = join(dataDir, AUTH_FILE);
    this.state = this.read();
  }

  private read(): AuthFile {
    if (!existsSync(this.file)) return { version: 1, password: null, lockout: { ...NO_LOCKOUT } };
    const j = JSON.parse(readFileSync(this.file, 'utf8')) as AuthFile;
    return { version: 1, password: j.password ?? null, lockout: j.lockout ?? { ...NO_LOCKOUT } };
  }

  /** Atomic (rename) and private: the file holds the hash. */
  private write(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.state)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.file);
  }

  /** True while the factory default is the password. */
  get mustChange(): boolean {
    return this.state.password === null;
  }

  get lockout(): LockoutState {
    return this.state.lockout;
  }

  setLockout(s: LockoutState): void {
    this.state.lockout = s;
    this.write();
  }

  async verify(pw: string): Promise<boolean> {
    const h = this.state.password;
    if (h === null) return pw === FACTORY_PASSWORD;
    const got = await derive(pw, Buffer.from(h.salt, 'base64'), h);
    const want = Buffer.from(h.hash, 'base64');
    return got.length === want.length && timingSafeEqual(got, want);
  }

  /** Why a new password is refused, or null. */
  static weak(pw: string): string | null {
    if (pw.length < MIN_PASSWORD) return `at least ${MIN_PASSWORD} characters`;
    if (pw === FACTORY_PASSWORD) return 'not the factory default';
    return null;
  }

  async setPassword(pw: string): Promise<void> {
    const salt = randomBytes(16);
    const key = await derive(pw, salt, PARAMS);
    this.state.password = { algo: 'scrypt', ...PARAMS, salt: salt.toString('base64'), hash: key.toString('base64') };
    this.write();
  }
}
