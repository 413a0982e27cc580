import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, MmioBus, PioBus } from '../../lib/bus/bus.js';
import type { BusDevice } from '../../lib/bus/device.js';
import type { IoExit, MmioExit } from '../../lib/kvm/exit.js';
import { NodeKvmError } from '../../lib/errors.js';

/** A device that records every access and reads back a register file. */
class Recorder implements BusDevice {
  log: string[] = [];
  regs = new Map<number, number>();
  read(offset: number, size: number): number {
    this.log.push(`r${offset}/${size}`);
    return this.regs.get(offset) ?? 0;
  }
  write(offset: number, size: number, value: number): void {
    this.log.push(`w${offset}/${size}=${value.toString(16)}`);
    this.regs.set(offset, value);
  }
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof NodeKvmError);
    return e.code;
  }
  return 'no error';
}

test('register dispatches with offsets relative to the base', () => {
  const bus = new Bus();
  const a = new Recorder();
  const b = new Recorder();
  bus.register(0x100, 8, a, 'a');
  bus.register(0x200, 4, b, 'b');
  bus.write(0x103, 1, 0x42);
  b.regs.set(2, 0x1234);
  assert.equal(bus.read(0x202, 2), 0x1234);
  assert.deepEqual(a.log, ['w3/1=42']);
  assert.deepEqual(b.log, ['r2/2']);
  assert.deepEqual(bus.devices.map((r) => r.name), ['a', 'b']);
  assert.equal(bus.find(0x104)?.device, a);
  assert.equal(bus.find(0x108), undefined);
});

test('overlapping windows are rejected with ERR_BUS_OVERLAP', () => {
  const bus = new Bus();
  bus.register(0x100, 0x10, new Recorder(), 'first');
  assert.equal(code(() => bus.register(0x10f, 1, new Recorder(), 'rec')), 'ERR_BUS_OVERLAP');
  assert.equal(code(() => bus.register(0xf0, 0x11, new Recorder(), 'rec')), 'ERR_BUS_OVERLAP');
  assert.equal(code(() => bus.register(0x0, 0x1000, new Recorder(), 'rec')), 'ERR_BUS_OVERLAP');
  // Adjacent windows are fine.
  bus.register(0x110, 1, new Recorder(), 'rec');
  bus.register(0xff, 1, new Recorder(), 'rec');
  assert.equal(bus.devices.length, 3);
});

test('an overlap error names both registrations; a registration needs a name', () => {
  const bus = new Bus();
  bus.register(0x100, 0x10, new Recorder(), 'uart');
  assert.throws(() => bus.register(0x108, 4, new Recorder(), 'nic BAR0'),
    (e: Error & { code?: string }) => e.code === 'ERR_BUS_OVERLAP' && /nic BAR0/.test(e.message) && /uart/.test(e.message));
  assert.equal(code(() => bus.register(0x200, 1, new Recorder(), '' as string)), 'ERR_INVALID_ARG');
  assert.equal(code(() => bus.register(0x200, 1, new Recorder(), undefined as unknown as string)), 'ERR_INVALID_ARG');
});

test('bad windows and devices are caller errors', () => {
  const bus = new PioBus();
  assert.equal(code(() => bus.register(-1, 1, new Recorder(), 'rec')), 'ERR_INVALID_ARG');
  assert.equal(code(() => bus.register(0, 0, new Recorder(), 'rec')), 'ERR_INVALID_ARG');
  assert.equal(code(() => bus.register(1.5, 1, new Recorder(), 'rec')), 'ERR_INVALID_ARG');
  assert.equal(code(() => bus.register(0xffff, 2, new Recorder(), 'rec')), 'ERR_BUS_RANGE');
  assert.equal(code(() => bus.register(0, 1, {} as BusDevice, 'inline')), 'ERR_INVALID_ARG');
});

test('misses read all-ones for the access size and are counted, writes too', () => {
  const bus = new Bus();
  const misses: string[] = [];
  bus.onMiss = (d, addr, size) => misses.push(`${d}@${addr.toString(16)}/${size}`);
  bus.register(0x10, 4, new Recorder(), 'rec');
  assert.equal(bus.read(0x20, 1), 0xff);
  assert.equal(bus.read(0x20, 2), 0xffff);
  assert.equal(bus.read(0x20, 4), 0xffffffff);
  bus.write(0x0, 1, 5);
  assert.equal(bus.readMisses, 3);
  assert.equal(bus.writeMisses, 1);
  assert.equal(bus.missCount, 4);
  assert.deepEqual(misses, ['read@20/1', 'read@20/2', 'read@20/4', 'write@0/1']);
});

test('an access running past the end of a device is a miss, not a partial access', () => {
  const bus = new Bus();
  const d = new Recorder();
  bus.register(0x10, 4, d, 'd');
  assert.equal(bus.read(0x12, 4), 0xffffffff);
  bus.write(0x13, 2, 0xabcd);
  assert.equal(bus.read(0x12, 2), 0); // fits exactly
  assert.deepEqual(d.log, ['r2/2']);
  assert.equal(bus.missCount, 2);
});

test('move relocates a window, keeps the device, and rejects overlaps', () => {
  const bus = new MmioBus();
  const bar = new Recorder();
  const other = new Recorder();
  bus.register(0xc000_0000, 0x100, bar, 'bar');
  bus.register(0xc000_1000, 0x100, other, 'other');
  assert.equal(bus.read(0xc000_0004, 4), 0); // warm the last-hit cache
  bus.move(bar, 0xd000_0000);
  assert.equal(bus.read(0xc000_0004, 4), 0xffffffff);
  bus.write(0xd000_0008, 4, 7);
  assert.deepEqual(bar.log, ['r4/4', 'w8/4=7']);
  assert.equal(code(() => bus.move(bar, 0xc000_0f80)), 'ERR_BUS_OVERLAP');
  // Moving onto (part of) its own old window is allowed.
  bus.move(bar, 0xd000_0080);
  assert.equal(bus.find(0xd000_0080)?.device, bar);
  assert.equal(code(() => bus.move(new Recorder(), 0)), 'ERR_BUS_NOT_REGISTERED');
  bus.register(0x1000, 1, bar, 'bar');
  assert.equal(code(() => bus.move(bar, 0x2000)), 'ERR_BUS_AMBIGUOUS');
});

test('unregister removes every window of the device and clears the cache', () => {
  const bus = new Bus();
  const d = new Recorder();
  bus.register(0x60, 1, d, 'd');
  bus.register(0x64, 1, d, 'd');
  assert.equal(bus.read(0x60, 1), 0);
  assert.equal(bus.unregister(d), 2);
  assert.equal(bus.read(0x60, 1), 0xff);
  assert.equal(bus.unregister(d), 0);
  bus.register(0x60, 5, new Recorder(), 'rec'); // the space is free again
});

test('lookup finds the right device among many (binary search + cache)', () => {
  const bus = new Bus();
  const devs: Recorder[] = [];
  for (let i = 0; i < 50; i++) {
    const d = new Recorder();
    d.regs.set(0, i);
    devs.push(d);
    bus.register(((i * 37) % 50) * 0x10, 8, d, 'd');
  }
  for (let i = 0; i < 50; i++) assert.equal(bus.read(((i * 37) % 50) * 0x10, 1), i);
  assert.equal(bus.read(0x18, 1), 0xff);
});

function ioExit(direction: 'in' | 'out', port: number, size: number, count: number, bytes?: number[]): IoExit {
  const data = new Uint8Array(4096);
  if (bytes) data.set(bytes);
  return { reason: 'io', direction, port, size, count, data };
}

test('handleIo out: little-endian values, count repetitions (rep outs)', () => {
  const bus = new PioBus();
  const d = new Recorder();
  bus.register(0x3f8, 8, d, 'd');
  bus.handleIo(ioExit('out', 0x3f8, 1, 3, [0x61, 0x62, 0x63]));
  bus.handleIo(ioExit('out', 0x3fa, 2, 2, [0x34, 0x12, 0x78, 0x56]));
  bus.handleIo(ioExit('out', 0x3fc, 4, 1, [0x04, 0x03, 0x02, 0xf1]));
  assert.deepEqual(d.log, ['w0/1=61', 'w0/1=62', 'w0/1=63', 'w2/2=1234', 'w2/2=5678', 'w4/4=f1020304']);
});

test('handleIo in: fills data for every repetition (rep ins), misses give all-ones', () => {
  const bus = new PioBus();
  let n = 0;
  bus.register(0x1f0, 8, { read: (_o, size) => (size === 2 ? 0xbe00 + n++ : 0), write: () => {} }, 'inline');
  const ex = ioExit('in', 0x1f0, 2, 3);
  bus.handleIo(ex);
  assert.deepEqual([...ex.data.subarray(0, 6)], [0x00, 0xbe, 0x01, 0xbe, 0x02, 0xbe]);
  const miss = ioExit('in', 0x80, 4, 1);
  bus.handleIo(miss);
  assert.deepEqual([...miss.data.subarray(0, 5)], [0xff, 0xff, 0xff, 0xff, 0]);
  assert.equal(bus.readMisses, 1);
  // A count larger than the data page is clamped rather than throwing.
  const big: IoExit = { reason: 'io', direction: 'in', port: 0x1f0, size: 4, count: 100, data: new Uint8Array(8) };
  bus.handleIo(big);
});

test('handleMmio: 1/2/4-byte accesses and 8-byte accesses split low dword first', () => {
  const bus = new MmioBus();
  const d = new Recorder();
  bus.register(0xfeb0_0000, 0x100, d, 'd');
  const w: MmioExit = { reason: 'mmio', isWrite: true, address: 0xfeb0_0010, size: 8, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 0x88]) };
  bus.handleMmio(w);
  assert.deepEqual(d.log, ['w16/4=4030201', 'w20/4=88070605']);
  const r: MmioExit = { reason: 'mmio', isWrite: false, address: 0xfeb0_0010, size: 8, data: new Uint8Array(8) };
  bus.handleMmio(r);
  assert.deepEqual([...r.data], [1, 2, 3, 4, 5, 6, 7, 0x88]);
  assert.deepEqual(d.log.slice(2), ['r16/4', 'r20/4']);
  const b: MmioExit = { reason: 'mmio', isWrite: true, address: 0xfeb0_0001, size: 1, data: new Uint8Array([0x5a, 0, 0, 0, 0, 0, 0, 0]) };
  bus.handleMmio(b);
  const h: MmioExit = { reason: 'mmio', isWrite: false, address: 0xfeb0_0014, size: 2, data: new Uint8Array(8) };
  bus.handleMmio(h);
  assert.deepEqual([...h.data.subarray(0, 3)], [0x05, 0x06, 0]);
  const miss: MmioExit = { reason: 'mmio', isWrite: false, address: 0x1000, size: 8, data: new Uint8Array(8) };
  bus.handleMmio(miss);
  assert.deepEqual([...miss.data], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(bus.readMisses, 2);
});

test('a Sink claims ignored ports (POST 0x80): no misses, fixed read value, last write kept', async () => {
  const { Sink } = await import('../../lib/devices/sink.js');
  const bus = new PioBus();
  const post = new Sink();
  const seen: number[] = [];
  const zero = new Sink({ readValue: 0, onWrite: (_o, _s, v) => seen.push(v) });
  bus.register(0x80, 1, post, 'post');
  bus.register(0xed, 1, zero, 'io-delay');
  bus.write(0x80, 1, 0x42);
  assert.equal(bus.read(0x80, 1), 0xff);
  bus.write(0xed, 1, 7);
  assert.equal(bus.read(0xed, 1), 0);
  assert.equal(post.lastValue, 0x42);
  assert.equal(post.writes, 1);
  assert.deepEqual(seen, [7]);
  assert.equal(bus.missCount, 0);
  post.reset();
  assert.equal(post.lastValue, -1);
  assert.throws(() => new Sink({ readValue: -1 }), NodeKvmError);
});

test('the legacy platform devices register side by side at their layout ports', async () => {
  const layout = await import('../../lib/platform/layout.js');
  const { RecordingIrqLine } = await import('../../lib/bus/irq.js');
  const { Uart16550, UART_IO_SIZE } = await import('../../lib/devices/uart16550.js');
  const { I8042, I8042_IO_SIZE } = await import('../../lib/devices/i8042.js');
  const { Cmos, CMOS_IO_SIZE } = await import('../../lib/devices/cmos.js');
  const { DebugExit, DEBUG_EXIT_IO_SIZE } = await import('../../lib/devices/debug-exit.js');
  const { FwCfg, FW_CFG_IO_SIZE } = await import('../../lib/devices/fw-cfg.js');
  const { Sink } = await import('../../lib/devices/sink.js');
  const pio = new PioBus();
  const tx: number[] = [];
  pio.register(layout.PORT_COM[0], UART_IO_SIZE, new Uart16550({ irq: new RecordingIrqLine(), onTransmit: (b) => tx.push(b) }), 'com1');
  pio.register(layout.PORT_I8042_DATA, I8042_IO_SIZE, new I8042({ irq: new RecordingIrqLine(), onReset: () => {} }), 'i8042');
  pio.register(layout.PORT_CMOS_INDEX, CMOS_IO_SIZE, new Cmos({ memoryBelow4g: 128 << 20, memoryAbove4g: 0 }), 'cmos');
  pio.register(layout.PORT_POST, 1, new Sink(), 'post');
  pio.register(layout.PORT_DEBUG_EXIT, DEBUG_EXIT_IO_SIZE, new DebugExit({ onExit: () => {} }), 'debug-exit');
  pio.register(layout.PORT_FW_CFG, FW_CFG_IO_SIZE, new FwCfg({ cpus: 1 }), 'fw_cfg');
  pio.write(layout.PORT_COM[0], 1, 0x4f);
  assert.deepEqual(tx, [0x4f]);
  // Linux's 8250 probe of an absent COM2 sees all-ones and gives up.
  assert.equal(pio.read(layout.PORT_COM[1] + 1, 1) & 0x0f, 0x0f);
  assert.equal(pio.missCount, 1);
});
