import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PioBus } from '../../lib/bus/bus.js';
import { NodeKvmError } from '../../lib/errors.js';
import { PORT_FW_CFG, PORT_FW_CFG_DATA } from '../../lib/platform/layout.js';
import { FwCfg, FW_CFG_IO_SIZE, buildE820File, E820_RAM, E820_RESERVED } from '../../lib/devices/fw-cfg.js';

function setup(cpus = 2) {
  const fw = new FwCfg({ cpus });
  const bus = new PioBus();
  bus.register(PORT_FW_CFG, FW_CFG_IO_SIZE, fw, 'fw_cfg');
  const select = (key: number) => bus.write(PORT_FW_CFG, 2, key);
  const readBytes = (n: number) => Array.from({ length: n }, () => bus.read(PORT_FW_CFG_DATA, 1));
  return { fw, bus, select, readBytes };
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

test('signature "QEMU" at key 0, reads past the end return 0', () => {
  const { select, readBytes } = setup();
  select(0x0000);
  assert.equal(String.fromCharCode(...readBytes(4)), 'QEMU');
  assert.deepEqual(readBytes(3), [0, 0, 0]);
});

test('ID advertises the traditional interface only (no DMA)', () => {
  const { select, readBytes } = setup();
  select(0x0001);
  assert.deepEqual(readBytes(4), [1, 0, 0, 0]);
});

test('CPU count is a little-endian u16 at 0x0005', () => {
  const { select, readBytes } = setup(3);
  select(0x0005);
  assert.deepEqual(readBytes(2), [3, 0]);
});

test('selecting rewinds the offset; unknown keys read 0; selector and data write are ignored reads', () => {
  const { select, readBytes, bus } = setup();
  select(0);
  readBytes(2);
  select(0);
  assert.equal(readBytes(1)[0], 0x51);
  select(0x1234);
  assert.deepEqual(readBytes(2), [0, 0]);
  assert.equal(bus.read(PORT_FW_CFG, 1), 0xff);
  select(0);
  bus.write(PORT_FW_CFG_DATA, 1, 0x99); // ignored
  assert.equal(readBytes(1)[0], 0x51);
  // The write-channel bit still selects the item for reading.
  select(0x4000);
  assert.equal(readBytes(1)[0], 0x51);
});

test('file directory: count BE, entries {size BE, select BE, reserved, name[56]} sorted by name', () => {
  const { fw, select, readBytes } = setup();
  const kb = fw.addFile('opt/zeta', new Uint8Array([1, 2, 3]));
  const ka = fw.addFile('etc/alpha', new Uint8Array(300));
  assert.equal(kb, 0x20);
  assert.equal(ka, 0x21);
  select(0x0019);
  const dir = Uint8Array.from(readBytes(4 + 2 * 64));
  const dv = new DataView(dir.buffer);
  assert.equal(dv.getUint32(0, false), 2);
  const entry = (i: number) => {
    const at = 4 + i * 64;
    const nameBytes = dir.subarray(at + 8, at + 64);
    const end = nameBytes.indexOf(0);
    return {
      size: dv.getUint32(at, false),
      select: dv.getUint16(at + 4, false),
      reserved: dv.getUint16(at + 6, false),
      name: new TextDecoder().decode(nameBytes.subarray(0, end)),
    };
  };
  assert.deepEqual(entry(0), { size: 300, select: 0x21, reserved: 0, name: 'etc/alpha' });
  assert.deepEqual(entry(1), { size: 3, select: 0x20, reserved: 0, name: 'opt/zeta' });
  select(kb);
  assert.deepEqual(readBytes(4), [1, 2, 3, 0]);
});

test('an empty directory has count 0', () => {
  const { select, readBytes } = setup();
  select(0x19);
  assert.deepEqual(readBytes(5), [0, 0, 0, 0, 0]);
});

test('file names: duplicates and names over 55 bytes are refused with codes', () => {
  const { fw } = setup();
  fw.addFile('x'.repeat(55), new Uint8Array(1));
  assert.equal(code(() => fw.addFile('x'.repeat(56), new Uint8Array(1))), 'ERR_FW_CFG_NAME');
  assert.equal(code(() => fw.addFile('', new Uint8Array(1))), 'ERR_FW_CFG_NAME');
  assert.equal(code(() => fw.addFile('a\0b', new Uint8Array(1))), 'ERR_FW_CFG_NAME');
  fw.addFile('etc/e820', new Uint8Array(1));
  assert.equal(code(() => fw.addFile('etc/e820', new Uint8Array(2))), 'ERR_FW_CFG_DUPLICATE');
});

test('setItem: numbered and arch-local items; reserved keys refused', () => {
  const { fw, select, readBytes } = setup();
  const ram = new Uint8Array(8);
  new DataView(ram.buffer).setBigUint64(0, 256n << 20n, true);
  fw.setItem(0x0003, ram);
  ram.fill(0xee); // the device keeps its own copy
  select(0x0003);
  assert.deepEqual(readBytes(8), [0, 0, 0, 0x10, 0, 0, 0, 0]);
  fw.setItem(0x8003, new Uint8Array([9]));
  select(0x8003);
  assert.deepEqual(readBytes(1), [9]);
  fw.setItem(0x0005, new Uint8Array([4, 0]));
  select(0x0005);
  assert.deepEqual(readBytes(2), [4, 0]);
  for (const k of [0x0000, 0x0001, 0x0019, 0x0020, 0x4003, 0x10000, -1, 1.5]) {
    assert.equal(code(() => fw.setItem(k, new Uint8Array(1))), 'ERR_FW_CFG_KEY', `key ${k}`);
  }
});

test('buildE820File: packed u64 addr, u64 length, u32 type, little-endian', () => {
  const bytes = buildE820File([
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x1_0000_0000n, size: 0x4000_0000, type: E820_RAM },
    { addr: 0xfeff_c000, size: 0x4000, type: E820_RESERVED },
  ]);
  assert.equal(bytes.length, 60);
  const dv = new DataView(bytes.buffer);
  assert.equal(dv.getBigUint64(0, true), 0n);
  assert.equal(dv.getBigUint64(8, true), 0x9fc00n);
  assert.equal(dv.getUint32(16, true), 1);
  assert.equal(dv.getBigUint64(20, true), 0x1_0000_0000n);
  assert.equal(dv.getBigUint64(28, true), 0x4000_0000n);
  assert.equal(dv.getUint32(56, true), 2);
  const { fw, select, readBytes } = setup();
  const key = fw.addFile('etc/e820', bytes);
  select(key);
  assert.deepEqual(readBytes(60), [...bytes]);
  assert.throws(() => buildE820File([{ addr: -1, size: 1, type: 1 }]), NodeKvmError);
  assert.throws(() => buildE820File([{ addr: 0, size: 1, type: -1 }]), NodeKvmError);
});

test('bad options are caller errors; guest garbage never throws', () => {
  assert.equal(code(() => new FwCfg({ cpus: 0 })), 'ERR_INVALID_ARG');
  assert.equal(code(() => new FwCfg({} as never)), 'ERR_INVALID_ARG');
  const { bus, fw } = setup();
  for (let k = 0; k < 0x10000; k += 0x111) {
    bus.write(PORT_FW_CFG, 2, k);
    bus.read(PORT_FW_CFG_DATA, 1);
    bus.read(PORT_FW_CFG_DATA, 2); // runs past the device: a bus miss
    bus.write(PORT_FW_CFG_DATA, 1, k);
  }
  fw.reset();
});
