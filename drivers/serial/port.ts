/**
 * Serial ports for the RTU master and simulator: node serialport, with its reads and writes done
 * on the event loop's own thread on Linux.
 *
 * serialport's Linux binding (bindings-cpp 13) opens the tty non-blocking, waits for it with a
 * uv_poll, and then reads and writes through fs.read/fs.write, i.e. through libuv's thread pool:
 * every frame out and every chunk in costs a hand-off to a pool thread and back, a real share of
 * a transaction that lasts only 6.4 ms on the line (10 registers at 115200 baud). On a
 * non-blocking descriptor read(2) and write(2) never block, so this binding calls them directly
 * (readSync/writeSync) and uses the binding's own poller only when the tty has nothing to give
 * (EAGAIN) or no room to take. Everything else (open with termios, locking, set/get, tcdrain,
 * close) is serialport's, through its documented extension point: the `binding` option of
 * SerialPortStream. On other platforms the stock binding is used unchanged.
 *
 * Failure behaviour matches bindings-cpp's unix-read/unix-write: EAGAIN/EWOULDBLOCK/EINTR wait
 * for the poller; EBADF/ENXIO/EIO mark the error `disconnect`; a read on a closed port is
 * `canceled` (the stream ignores those). A read of 0 bytes waits for the poller instead of
 * spinning (the far end of a pty went away).
 */
import { readSync, writeSync } from 'node:fs';
import { autoDetect, LinuxBinding, LinuxPortBinding, type AutoDetectTypes, type LinuxOpenOptions, type OpenOptionsFromBinding } from '@serialport/bindings-cpp';
import { SerialPortStream } from '@serialport/stream';

type Errno = Error & { code?: string; disconnect?: boolean; canceled?: boolean };

const RETRY = new Set(['EAGAIN', 'EWOULDBLOCK', 'EINTR']);
const GONE = new Set(['EBADF', 'ENXIO', 'EIO', 'UNKNOWN']);

function canceled(): Errno {
  return Object.assign(new Error('Port is not open'), { canceled: true });
}

function ready(port: LinuxPortBinding, event: 'readable' | 'writable'): Promise<void> {
  return new Promise((resolve, reject) => port.poller.once(event, (e) => (e ? reject(e) : resolve())));
}

function fatal(e: Errno): Errno {
  if (e.code !== undefined && GONE.has(e.code)) e.disconnect = true;
  return e;
}

async function readNow(port: LinuxPortBinding, buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }> {
  for (;;) {
    if (port.fd === null) throw canceled();
    let n = 0;
    try {
      n = readSync(port.fd, buffer, offset, length, null);
    } catch (e) {
      if (!RETRY.has((e as Errno).code ?? '')) throw fatal(e as Errno);
    }
    if (n > 0) return { buffer, bytesRead: n };
    await ready(port, 'readable');
  }
}

async function writeNow(port: LinuxPortBinding, buffer: Buffer): Promise<void> {
  let off = 0;
  while (off < buffer.length) {
    // serialport's own error for a port closed mid-write (as bindings-cpp's unix-write): the stream
    // treats it as a disconnect and the RTU master reports the failed write as SERIAL_PORT_ERROR.
    if (port.fd === null) throw new Error('Port is not open');
    try {
      off += writeSync(port.fd, buffer, off, buffer.length - off);
      continue;
    } catch (e) {
      if (!RETRY.has((e as Errno).code ?? '')) throw fatal(e as Errno);
    }
    await ready(port, 'writable');
  }
}

/** The port's read and write replaced; drain() still waits for the write, then tcdrain. */
function onLoopThread(port: LinuxPortBinding): LinuxPortBinding {
  // writeOperation is private in the typings; drain() awaits it, so ours must be there too.
  const op = port as unknown as { writeOperation: Promise<void> | null };
  port.read = async (buffer: Buffer, offset: number, length: number) => {
    // The stream reads into its own pool within bounds: only a bug in a caller could trip this.
    if (buffer.length < offset + length) throw new Error(`internal: buffer is too small (${buffer.length} bytes for ${length} at ${offset})`);
    return readNow(port, buffer, offset, length);
  };
  port.write = (buffer: Buffer) => {
    if (!port.isOpen) return Promise.reject(new Error('Port is not open'));
    const w = writeNow(port, buffer).finally(() => {
      if (op.writeOperation === w) op.writeOperation = null;
    });
    op.writeOperation = w;
    return w;
  };
  return port;
}

/** serialport's Linux binding with reads and writes on the event loop thread. */
export const LoopThreadBinding: typeof LinuxBinding = {
  list: () => LinuxBinding.list(),
  open: async (options) => onLoopThread(await LinuxBinding.open(options)),
};

/**
 * LoopThreadBinding over a tty descriptor that is already open (Linux only): the far side of a
 * pty pair created by another process and inherited (scripts/bench/field.ts's simulator, which
 * holds the pty's master end so that no relay process sits between it and the master under
 * test). termios are left as they are; close() closes the descriptor.
 */
export function adoptedBinding(fd: number): typeof LinuxBinding {
  return {
    list: () => LinuxBinding.list(),
    open: async (options) => {
      const o: Required<LinuxOpenOptions> = {
        vmin: 1, vtime: 0, dataBits: 8, lock: false, stopBits: 1, parity: 'none', rtscts: false, xon: false, xoff: false, xany: false, hupcl: false,
        ...options,
      };
      return onLoopThread(new LinuxPortBinding(fd, o));
    },
  };
}

/** The binding this platform gets: LoopThreadBinding on Linux, serialport's own elsewhere. */
export function serialBinding(): AutoDetectTypes {
  return process.platform === 'linux' ? LoopThreadBinding : autoDetect();
}

export type SerialOpenOptions = Omit<OpenOptionsFromBinding<AutoDetectTypes>, 'binding'> & {
  autoOpen?: boolean;
  /** An open tty descriptor to use instead of opening `path` (Linux; see adoptedBinding). */
  fd?: number;
};

export type SerialStream = SerialPortStream<AutoDetectTypes>;

/** A serialport stream on serialBinding() (or on `fd`); unopened unless autoOpen is true. */
export function serialPort(o: SerialOpenOptions): SerialStream {
  const { fd, ...rest } = o;
  // `fd` is programmatic only (the bench's pty pairs; no config key or CLI option sets it).
  if (fd !== undefined && process.platform !== 'linux') throw new Error(`internal: an inherited serial descriptor (fd ${fd}) is supported on Linux only`);
  return new SerialPortStream<AutoDetectTypes>({ autoOpen: false, ...rest, binding: fd === undefined ? serialBinding() : adoptedBinding(fd) });
}

/**
 * The errno of a failed open. bindings-cpp reports the C library's text ("No such file or
 * directory, cannot open /dev/ttyUSB9") with no `code`: the text names the errno, which is kept
 * rather than guessed as EIO. Unknown texts stay EIO.
 */
const OPEN_ERRNOS: [RegExp, string][] = [
  [/No such file or directory/i, 'ENOENT'],
  [/Permission denied/i, 'EACCES'],
  [/Device or resource busy|Cannot lock port|Resource temporarily unavailable/i, 'EBUSY'],
  [/No such device or address/i, 'ENXIO'],
  [/No such device/i, 'ENODEV'],
  [/Not a directory/i, 'ENOTDIR'],
  [/Inappropriate ioctl for device/i, 'ENOTTY'],
];

export function openErrno(e: Error & { code?: unknown }): string {
  if (typeof e.code === 'string' && e.code) return e.code;
  return OPEN_ERRNOS.find(([re]) => re.test(e.message))?.[1] ?? 'EIO';
}
