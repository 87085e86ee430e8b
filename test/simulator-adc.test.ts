/** A fault script can move the RS-485 bus voltage the agent reads, through a fake sysfs tree. */
import t from 'tap';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFaultScript, runFaultScript, FaultScriptError } from '../drivers/modbus/simulator/faults.js';
import { createDevice } from '../drivers/modbus/simulator/profiles.js';
import { Sysfs } from '../hardware/sysfs.js';

t.test('busVolts steps write the fake IIO channel that the agent reads back as volts', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'holdfast-adc-'));
  const dir = join(root, 'sys/bus/iio/devices/iio:device0');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'in_voltage0_scale'), '0.0625\n'); // ADS1115 at +-2.048 V
  writeFileSync(join(dir, 'in_voltage0_raw'), '0\n');
  const sysfs = new Sysfs(root);
  const channel = { device: 'iio:device0', channel: 'in_voltage0', scale: 2 };
  const steps = parseFaultScript([{ atMs: 0, busVolts: 3.3 }, { atMs: 30, busVolts: 1.2 }]);
  const run = runFaultScript(steps, new Map([[1, createDevice('counter', 1)]]), undefined, { rawFile: join(dir, 'in_voltage0_raw'), divider: 2 });
  await new Promise((r) => setTimeout(r, 80)); // the script timers are unref()d
  await run.done;
  t.ok(Math.abs((sysfs.readAdcVolts(channel) ?? 0) - 1.2) < 0.01, `reads 1.2 V back (${sysfs.readAdcVolts(channel)})`);
  t.throws(() => parseFaultScript([{ atMs: 0, busVolts: -1 }]), FaultScriptError, 'negative volts refused');
  t.throws(() => runFaultScript(parseFaultScript([{ atMs: 0, busVolts: 2 }]), new Map()), /--adc/, 'busVolts without an ADC file refused');
});
