/**
 * drivers/serial/port.ts: serialport with reads and writes on the event loop thread, over a real
 * socat pty pair, against serialport's stock binding at the far end (code we did not write).
 * - bytes cross both ways intact, including a write far larger than the pty's buffer (the
 *   EAGAIN -> poller 'writable' path) and reads of whatever has arrived (EAGAIN -> 'readable');
 * - no read or write goes through libuv's thread pool (fs.read/fs.write are never called);
 * - the far end going away ends the stream with an error or a close, never a hang or a throw;
 * - close() with a read pending resolves and nothing escapes;
 * - an adopted descriptor (serialPort({fd}): the bench's direct pty pairs) works as a port.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { SerialPort } from 'serialport';
import { LoopThreadBinding, serialPort, type SerialStream } from '../drivers/serial/port.js';
import { directPtysAvailable, parsePtyLine, spawnOnPtys } from '../scripts/bench/pty-direct.js';
import { ptyPair } from './helpers/socat.js';

const open = (p: SerialStream | SerialPort) => new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())));
const close = (p: SerialStream | SerialPort) => new Promise<void>((res) => (p.isOpen ? p.close(() => res()) : res()));

/** Collects `n` bytes from a port (or fails after ms). */
function collect(p: SerialStream | SerialPort, n: number, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`${got}/${n} bytes after ${ms} ms`)), ms);
    const on = (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= n) {
        clearTimeout(timer);
        p.off('data', on);
        resolve(Buffer.concat(parts));
      }
    };
    p.on('data', on);
  });
}

t.test('on Linux the binding in use is the loop-thread one', async (t) => {
  t.equal(process.platform, 'linux', 'these tests run on Linux');
  const pty = await ptyPair();
  t.teardown(() => pty.close());
  const p = serialPort({ path: pty.a, baudRate: 115200 });
  t.equal((p.settings as { binding: unknown }).binding, LoopThreadBinding);
});

t.test('bytes cross intact both ways; a 256 KB write waits for room instead of failing; no thread-pool I/O', async (t) => {
  const pty = await ptyPair();
  t.teardown(() => pty.close());
  const ours = serialPort({ path: pty.a, baudRate: 115200 });
  const theirs = new SerialPort({ path: pty.b, baudRate: 115200, autoOpen: false });
  await open(ours);
  await open(theirs);
  t.teardown(async () => (await close(ours), await close(theirs)));
  // Count thread-pool reads and writes on our port's descriptor while the test runs.
  const fd = (ours.port as unknown as { fd: number }).fd;
  let poolIo = 0;
  const origRead = fs.read;
  const origWrite = fs.write;
  (fs as { read: unknown }).read = (...a: unknown[]) => ((a[0] === fd && poolIo++), (origRead as (...x: unknown[]) => unknown)(...a));
  (fs as { write: unknown }).write = (...a: unknown[]) => ((a[0] === fd && poolIo++), (origWrite as (...x: unknown[]) => unknown)(...a));
  t.teardown(() => ((fs as { read: unknown }).read = origRead, (fs as { write: unknown }).write = origWrite));

  const big = randomBytes(256 * 1024);
  const arriving = collect(theirs, big.length, 20_000);
  const wrote = new Promise<Error | null>((res) => ours.write(big, (e) => res(e ?? null)));
  t.equal(await wrote, null, 'the write completes');
  t.ok((await arriving).equals(big), '256 KB arrive byte for byte at the stock end');

  const back = randomBytes(64 * 1024);
  const returning = collect(ours, back.length, 20_000);
  theirs.write(back);
  t.ok((await returning).equals(back), '64 KB arrive byte for byte at our end');

  const small = Buffer.from([1, 3, 0, 0, 0, 10, 0xc5, 0xcd]);
  for (let i = 0; i < 20; i++) {
    const echo = collect(theirs, 8, 5000);
    ours.write(small);
    t.ok((await echo).equals(small), `frame ${i + 1}`);
  }
  t.equal(poolIo, 0, 'no fs.read/fs.write on our descriptor (reads and writes ran on the loop thread)');
  const drained = await new Promise<Error | null>((res) => ours.drain((e) => res(e ?? null)));
  t.equal(drained, null, 'drain() (tcdrain) still works');
});

t.test('the far end goes away: the stream ends with an error or a close, never a hang; nothing escapes', async (t) => {
  const escaped: unknown[] = [];
  const onRej = (e: unknown) => escaped.push(e);
  process.on('unhandledRejection', onRej);
  t.teardown(() => void process.off('unhandledRejection', onRej));
  const pty = await ptyPair();
  const ours = serialPort({ path: pty.a, baudRate: 9600 });
  await open(ours);
  const ended = new Promise<string>((res) => {
    ours.once('error', (e) => res(`error ${(e as Error & { code?: string }).code ?? e.message}`));
    ours.once('close', () => res('close'));
  });
  ours.on('data', () => {});
  await pty.close(); // kills socat: our end hangs up
  const how = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('HUNG'), 5000))]);
  t.not(how, 'HUNG', `the stream ended (${how})`);
  await close(ours);
  t.same(escaped, [], 'no unhandled rejection');
});

t.test('close() with a read pending resolves; the pending read ends quietly (canceled)', async (t) => {
  const pty = await ptyPair();
  t.teardown(() => pty.close());
  const ours = serialPort({ path: pty.a, baudRate: 9600 });
  await open(ours);
  const errors: Error[] = [];
  ours.on('error', (e) => errors.push(e));
  ours.on('data', () => {}); // a read is now waiting on the poller
  await new Promise((r) => setTimeout(r, 20));
  const closed = await Promise.race([close(ours).then(() => 'closed'), new Promise<string>((r) => setTimeout(() => r('HUNG'), 5000))]);
  t.equal(closed, 'closed', 'close() resolves');
  t.notOk(ours.isOpen, 'not open');
  await new Promise((r) => setTimeout(r, 20));
  t.same(errors.map((e) => e.message), [], 'no error event from the canceled read');
});

t.test('a direct pty pair (scripts/bench/pty-direct.ts): the far end holds the master descriptor (serialPort({fd})), our end opens the slave', async (t) => {
  if (!directPtysAvailable()) {
    t.fail('python3 is missing: scripts/test.sh installs it (python3-pymodbus depends on it)');
    return;
  }
  const here = path.dirname(fileURLToPath(import.meta.url));
  const far = `
    const { echo } = await import(${JSON.stringify(pathToFileURL(path.join(here, '../scripts/bench/pty.js')).href)});
    const { inheritedPtys } = await import(${JSON.stringify(pathToFileURL(path.join(here, '../scripts/bench/pty-direct.js')).href)});
    const p = inheritedPtys()[0];
    const close = await echo(p.path, 9600, p.fd);
    console.log('ready');
    process.stdin.resume();
    process.stdin.on('end', async () => { await close(); process.exit(0); });`;
  const child = spawnOnPtys(1, ['--input-type=module', '-e', far]);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  t.teardown(() => void child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no line from the far end; stderr: ${err}`)), 10_000);
    lines.once('line', (l) => (clearTimeout(timer), res(l)));
  });
  const [pty] = parsePtyLine(await next());
  t.match(pty.path, /^\/dev\/pts\/\d+$/, `the slave is a real pty: ${pty.path}`);
  t.equal(await next(), 'ready');
  const ours = serialPort({ path: pty.path, baudRate: 9600 });
  await open(ours);
  t.teardown(() => close(ours));
  for (let i = 0; i < 5; i++) {
    const back = collect(ours, 8, 5000);
    ours.write(Buffer.alloc(8, i));
    t.same([...(await back)], Array(8).fill(0xaa), `ping ${i + 1}: 8 bytes echoed through the adopted master descriptor`);
  }
  child.stdin!.end();
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 0, 'the far end closed its port and exited cleanly');
});
