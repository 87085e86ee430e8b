/**
 * Real small filesystems for the storage tests: a size-limited tmpfs, or an ext4 image on a loop
 * device mounted with errors=remount-ro (whose error trigger makes it go read-only as on a real
 * I/O error). Mounting needs root (CAP_SYS_ADMIN); mountSkip() says why a test must skip where
 * it cannot. Every mount is unmounted and every loop device detached in teardown (registered at
 * mount time, so it runs after the teardowns registered later, such as the agent's kill).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

interface HasTeardown {
  teardown(fn: () => unknown): void;
}

let skipReason: string | null | undefined;

/** Why mounting is impossible here (not root, no CAP_SYS_ADMIN, no mkfs.ext4/losetup), or null. */
export function mountSkip(): string | null {
  if (skipReason !== undefined) return skipReason;
  if (process.getuid?.() !== 0) return (skipReason = 'mounting a filesystem needs root: run the storage tests as root (CI does)');
  for (const tool of ['mkfs.ext4', 'e2fsck', 'losetup', 'mount', 'umount', 'mountpoint']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return (skipReason = `${tool} is not installed: bash scripts/system-deps.sh test`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-mnt-probe-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  if (r.status === 0) spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
  skipReason = r.status === 0 ? null : `cannot mount here (no CAP_SYS_ADMIN?): ${r.stderr.toString().trim()}`;
  return skipReason;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Unmounts, waiting a little for processes that still hold files open; lazily as a last resort. */
async function unmount(dir: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    if (spawnSync('mountpoint', ['-q', dir]).status !== 0) return;
    if (spawnSync('umount', [dir]).status === 0) return;
    await sleep(250);
  }
  spawnSync('umount', ['-l', dir]);
}

async function detach(dev: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const r = spawnSync('losetup', ['-d', dev]);
    if (r.status === 0 || /No such device|not a block|failed to use device/i.test(r.stderr.toString()) || spawnSync('losetup', [dev]).status !== 0) return;
    await sleep(250);
  }
}

/** A tmpfs of `bytes` mounted on a fresh folder (mode 0700); unmounted and removed in teardown. */
export function mountTmpfs(t: HasTeardown, bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir]);
  t.teardown(async () => {
    await unmount(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface Ext4 {
  /** The mount point. */
  dir: string;
  image: string;
  /** The loop device mounted now. */
  device: string;
  /** ext4's own error path (what an I/O error does): the journal aborts, the filesystem goes read-only. */
  triggerError(): void;
  /**
   * What an operator does after such an error, the agent still running: detach the mount
   * (lazily: the agent holds files open on it), fsck the image, mount it again on the same
   * folder through a new loop device. `unmountedMs`: how long the folder stays unmounted between.
   */
  repair(unmountedMs?: number): Promise<void>;
}

/** An ext4 image of `mb` MiB on a loop device, mounted errors=remount-ro; unmounted, detached and removed in teardown. */
export function mountExt4(t: HasTeardown, mb: number): Ext4 {
  const root = mkdtempSync(join(tmpdir(), 'holdfast-ext4-'));
  const image = join(root, 'fs.img');
  const dir = join(root, 'mnt');
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(image, '');
  execFileSync('truncate', ['-s', `${mb}M`, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  const devices: string[] = [];
  const attach = () => {
    const dev = execFileSync('losetup', ['-f', '--show', image]).toString().trim();
    devices.push(dev);
    execFileSync('mount', ['-o', 'errors=remount-ro', dev, dir]);
    return dev;
  };
  const fs: Ext4 = {
    dir, image, device: attach(),
    triggerError() {
      writeFileSync(`/sys/fs/ext4/${basename(fs.device)}/trigger_fs_error`, '1');
    },
    async repair(unmountedMs = 0) {
      spawnSync('umount', ['-l', dir]);
      await sleep(unmountedMs);
      spawnSync('e2fsck', ['-fy', image]); // exit 1: errors corrected
      fs.device = attach();
    },
  };
  t.teardown(async () => {
    await unmount(dir);
    for (const d of devices.reverse()) await detach(d);
    rmSync(root, { recursive: true, force: true });
  });
  return fs;
}
