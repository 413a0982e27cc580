import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PioBus } from '../../lib/bus/bus.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { NodeKvmError } from '../../lib/errors.js';
import { PORT_I8042_DATA, PORT_I8042_CMD, PORT_SYSTEM_CONTROL_B } from '../../lib/platform/layout.js';
import { I8042, I8042_IO_SIZE } from '../../lib/devices/i8042.js';

const STR_OBF = 0x01;
const STR_IBF = 0x02;
const STR_AUXDATA = 0x20;

function setup() {
  const irq = new RecordingIrqLine();
  let resets = 0;
  const kbc = new I8042({ irq, onReset: () => resets++ });
  const bus = new PioBus();
  bus.register(PORT_I8042_DATA, I8042_IO_SIZE, kbc, 'i8042');
  const status = () => bus.read(PORT_I8042_CMD, 1);
  const data = () => bus.read(PORT_I8042_DATA, 1);
  /** Linux's i8042_command(): wait IBF clear, write command, params, then read `nret` replies. */
  const command = (cmd: number, params: number[] = [], nret = 0): number[] | 'timeout' => {
    assert.equal(status() & STR_IBF, 0);
    bus.write(PORT_I8042_CMD, 1, cmd);
    for (const p of params) {
      assert.equal(status() & STR_IBF, 0);
      bus.write(PORT_I8042_DATA, 1, p);
    }
    const out: number[] = [];
    for (let i = 0; i < nret; i++) {
      if (!(status() & STR_OBF)) return 'timeout';
      out.push(data());
    }
    return out;
  };
  return { irq, kbc, bus, status, data, command, resets: () => resets };
}

test('status after reset: no output, not busy, keyboard not inhibited', () => {
  const { status } = setup();
  const s = status();
  assert.equal(s & (STR_OBF | STR_IBF), 0);
  assert.notEqual(s, 0xff); // i8042_flush() would conclude "no controller"
  assert.equal(s & 0x10, 0x10);
});

test('self-test 0xAA → 0x55 and interface test 0xAB → 0x00', () => {
  const { command, status } = setup();
  assert.deepEqual(command(0xaa, [], 1), [0x55]);
  assert.equal(status() & 0x04, 0x04);
  assert.deepEqual(command(0xab, [], 1), [0x00]);
  assert.equal(status() & STR_OBF, 0);
});

test('CTR read 0x20 / write 0x60 round-trip; status CMD/DAT bit follows the last port written', () => {
  const { command, status } = setup();
  const [ctr] = command(0x20, [], 1) as number[];
  assert.equal(ctr, 0x45);
  assert.equal(status() & 0x08, 0x08);
  command(0x60, [0x74]);
  assert.equal(status() & 0x08, 0);
  assert.deepEqual(command(0x20, [], 1), [0x74]);
  // Stable CTR (Linux reads until two reads agree).
  assert.deepEqual(command(0x20, [], 1), [0x74]);
});

test('disable/enable keyboard and AUX ports flip CTR bits 4/5', () => {
  const { command } = setup();
  command(0xad);
  assert.equal((command(0x20, [], 1) as number[])[0]! & 0x10, 0x10);
  command(0xae);
  assert.equal((command(0x20, [], 1) as number[])[0]! & 0x10, 0);
  command(0xa7);
  assert.equal((command(0x20, [], 1) as number[])[0]! & 0x20, 0x20);
  command(0xa8);
  assert.equal((command(0x20, [], 1) as number[])[0]! & 0x20, 0);
});

test('Linux i8042_check_aux finds no AUX port quickly (no timeout)', () => {
  const { command, status, data } = setup();
  // AUX loop: the echo arrives, but not flagged as AUX data → Linux returns -1 at once.
  assert.deepEqual(command(0xd3, [0x5a]), []);
  const s = status();
  assert.equal(s & STR_OBF, STR_OBF);
  assert.equal(s & STR_AUXDATA, 0);
  // AUX interface test: a non-zero, non-0xfa/0xff reply means no AUX device.
  const [param] = command(0xa9, [], 1) as number[];
  assert.ok(param !== 0 && param !== 0xfa && param !== 0xff);
  assert.equal(status() & STR_OBF, 0);
  assert.equal(data(), 0);
});

test('output port: read 0xD0, write 0xD1 with bit 0 low resets the CPU', () => {
  const { command, resets } = setup();
  assert.equal((command(0xd0, [], 1) as number[])[0]! & 0x01, 0x01);
  command(0xd1, [0x03]);
  assert.equal(resets(), 0);
  command(0xd1, [0x02]);
  assert.equal(resets(), 1);
  assert.deepEqual(command(0xd0, [], 1), [0x02]);
});

test('reboot=k: command 0xFE pulses reset; 0xFF does not', () => {
  const { bus, resets } = setup();
  bus.write(PORT_I8042_CMD, 1, 0xff);
  assert.equal(resets(), 0);
  bus.write(PORT_I8042_CMD, 1, 0xfe);
  assert.equal(resets(), 1);
});

test('keyboard: GETID gets ACK + MF2 id, one byte per IRQ1 edge when KBDINT is set', () => {
  const { bus, irq, status, data, command } = setup();
  const edges: string[] = [];
  const orig = { raise: irq.raise.bind(irq), lower: irq.lower.bind(irq) };
  irq.raise = () => { edges.push('r'); orig.raise(); };
  irq.lower = () => { edges.push('l'); orig.lower(); };
  command(0x60, [0x47]); // KBDINT | SYS | XLATE, ports enabled
  bus.write(PORT_I8042_DATA, 1, 0xf2);
  assert.equal(irq.level, true);
  const got: number[] = [];
  while (status() & STR_OBF) got.push(data());
  assert.deepEqual(got, [0xfa, 0xab, 0x83]);
  assert.equal(irq.level, false);
  // Every byte after the first came with a fresh rising edge.
  const rises = edges.join('').split('lr').length - 1;
  assert.ok(rises >= 2, edges.join(''));
});

test('keyboard commands with arguments are acknowledged twice; reset gives BAT OK; echo', () => {
  const { bus, status, data } = setup();
  const send = (b: number) => {
    bus.write(PORT_I8042_DATA, 1, b);
    const out: number[] = [];
    while (status() & STR_OBF) out.push(data());
    return out;
  };
  assert.deepEqual(send(0xed), [0xfa]);
  assert.deepEqual(send(0x07), [0xfa]);
  assert.deepEqual(send(0xf0), [0xfa]);
  assert.deepEqual(send(0x00), [0xfa, 0x02]);
  assert.deepEqual(send(0xff), [0xfa, 0xaa]);
  assert.deepEqual(send(0xee), [0xee]);
  assert.deepEqual(send(0xf4), [0xfa]);
});

test('no IRQ when KBDINT is clear; host scancodes are delivered', () => {
  const { kbc, irq, command, status, data } = setup();
  command(0x60, [0x44]);
  kbc.sendScancodes(new Uint8Array([0x1e, 0x9e]));
  assert.equal(irq.level, false);
  assert.equal(status() & STR_OBF, 1);
  assert.equal(data(), 0x1e);
  assert.equal(data(), 0x9e);
  command(0x60, [0x45]);
  kbc.sendScancodes(new Uint8Array([0x1e]));
  assert.equal(irq.level, true);
  command(0xad);
  data();
  kbc.sendScancodes(new Uint8Array([0x1e])); // keyboard inhibited
  assert.equal(status() & STR_OBF, 0);
});

test('port 0x61: bits 4 and 5 toggle on reads, low bits writable', () => {
  const { bus } = setup();
  const a = bus.read(PORT_SYSTEM_CONTROL_B, 1);
  const b = bus.read(PORT_SYSTEM_CONTROL_B, 1);
  assert.equal((a ^ b) & 0x30, 0x30);
  bus.write(PORT_SYSTEM_CONTROL_B, 1, 0xff);
  assert.equal(bus.read(PORT_SYSTEM_CONTROL_B, 1) & 0x0f, 0x0f);
  // 0x62/0x63 are not decoded by anything useful.
  assert.equal(bus.read(0x62, 1), 0xff);
});

test('guest garbage never throws; reset restores the power-on state', () => {
  const { bus, kbc, status } = setup();
  for (let v = 0; v < 256; v++) {
    if (v === 0xfe) continue;
    bus.write(PORT_I8042_CMD, 1, v);
    bus.write(PORT_I8042_DATA, 1, v);
    bus.read(PORT_I8042_DATA, 4);
  }
  kbc.reset();
  assert.equal(status() & STR_OBF, 0);
  assert.equal(kbc.ctr, 0x45);
});

test('bad options are caller errors', () => {
  assert.throws(() => new I8042({} as never), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_INVALID_ARG');
});
