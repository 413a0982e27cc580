import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PioBus } from '../../lib/bus/bus.js';
import { NodeKvmError } from '../../lib/errors.js';
import { PORT_CMOS_INDEX, PORT_CMOS_DATA } from '../../lib/platform/layout.js';
import { Cmos, CMOS_IO_SIZE } from '../../lib/devices/cmos.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function setup(opts: { memoryBelow4g?: number; memoryAbove4g?: number; at?: string } = {}) {
  let nowMs = Date.parse(opts.at ?? '2024-03-09T17:05:42Z'); // a Saturday
  const cmos = new Cmos({
    memoryBelow4g: opts.memoryBelow4g ?? 256 * MiB,
    memoryAbove4g: opts.memoryAbove4g ?? 0,
    now: () => new Date(nowMs),
  });
  const bus = new PioBus();
  bus.register(PORT_CMOS_INDEX, CMOS_IO_SIZE, cmos, 'cmos');
  const rd = (i: number) => {
    bus.write(PORT_CMOS_INDEX, 1, i);
    return bus.read(PORT_CMOS_DATA, 1);
  };
  const wr = (i: number, v: number) => {
    bus.write(PORT_CMOS_INDEX, 1, i);
    bus.write(PORT_CMOS_DATA, 1, v);
  };
  return { cmos, bus, rd, wr, advance: (ms: number) => { nowMs += ms; } };
}

test('status registers: A has UIP clear, B is BCD 24h, D has VRT, C reads 0', () => {
  const { rd } = setup();
  assert.equal(rd(0x0a) & 0x80, 0);
  assert.equal(rd(0x0a), 0x26);
  assert.equal(rd(0x0b), 0x02);
  assert.equal(rd(0x0c), 0x00);
  assert.equal(rd(0x0d), 0x80);
});

test('time registers in BCD, 24-hour', () => {
  const { rd } = setup();
  assert.equal(rd(0x00), 0x42);
  assert.equal(rd(0x02), 0x05);
  assert.equal(rd(0x04), 0x17);
  assert.equal(rd(0x06), 0x07); // Saturday = 7 (Sunday = 1)
  assert.equal(rd(0x07), 0x09);
  assert.equal(rd(0x08), 0x03);
  assert.equal(rd(0x09), 0x24);
  assert.equal(rd(0x32), 0x20);
});

test('binary mode (DM) and 12-hour mode with the PM bit', () => {
  const { rd, wr } = setup();
  wr(0x0b, 0x06); // binary, 24h
  assert.equal(rd(0x00), 42);
  assert.equal(rd(0x04), 17);
  assert.equal(rd(0x09), 24);
  assert.equal(rd(0x32), 20);
  wr(0x0b, 0x04); // binary, 12h
  assert.equal(rd(0x04), 0x80 | 5);
  wr(0x0b, 0x00); // BCD, 12h
  assert.equal(rd(0x04), 0x85);
});

test('12-hour mode: midnight and noon are 12', () => {
  const night = setup({ at: '2024-01-01T00:30:00Z' });
  night.wr(0x0b, 0x00);
  assert.equal(night.rd(0x04), 0x12);
  const noon = setup({ at: '2024-01-01T12:30:00Z' });
  noon.wr(0x0b, 0x00);
  assert.equal(noon.rd(0x04), 0x92);
});

test('the clock follows the time source', () => {
  const { rd, advance } = setup();
  advance(3000);
  assert.equal(rd(0x00), 0x45);
  advance(60_000);
  assert.equal(rd(0x02), 0x06);
});

test('index bit 7 (NMI mask) is ignored; index port reads all-ones', () => {
  const { bus } = setup();
  bus.write(PORT_CMOS_INDEX, 1, 0x80 | 0x0d);
  assert.equal(bus.read(PORT_CMOS_DATA, 1), 0x80);
  assert.equal(bus.read(PORT_CMOS_INDEX, 1), 0xff);
});

test('setting the clock with SET (hwclock --systohc) moves the time and keeps running', () => {
  const { rd, wr, cmos, advance } = setup();
  wr(0x0b, 0x82); // SET: the clock freezes for the guest
  wr(0x00, 0x00);
  wr(0x02, 0x30);
  wr(0x04, 0x08);
  wr(0x07, 0x31);
  wr(0x08, 0x12);
  wr(0x09, 0x99);
  wr(0x32, 0x19);
  assert.equal(rd(0x04), 0x08); // reads show what was written while SET
  wr(0x0b, 0x02);
  assert.equal(cmos.time.toISOString(), '1999-12-31T08:30:00.000Z');
  advance(5000);
  assert.equal(rd(0x00), 0x05);
  assert.equal(rd(0x09), 0x99);
  assert.equal(rd(0x32), 0x19);
  cmos.reset();
  assert.equal(rd(0x09), 0x99); // a reset does not touch the battery-backed clock
});

test('writing one field of a running clock changes only that field', () => {
  const { rd, wr } = setup();
  wr(0x04, 0x03);
  assert.equal(rd(0x04), 0x03);
  assert.equal(rd(0x02), 0x05);
  assert.equal(rd(0x07), 0x09);
});

test('memory size bytes: 640K base, extended KiB capped at 64 MiB, 64K units above 16M and 4G', () => {
  const { rd } = setup({ memoryBelow4g: 3 * GiB, memoryAbove4g: 2 * GiB });
  assert.equal(rd(0x15) | (rd(0x16) << 8), 640);
  assert.equal(rd(0x17) | (rd(0x18) << 8), 0xffff);
  assert.equal(rd(0x30) | (rd(0x31) << 8), 0xffff);
  assert.equal(rd(0x34) | (rd(0x35) << 8), (3 * GiB - 16 * MiB) / 65536);
  assert.equal(rd(0x5b) | (rd(0x5c) << 8) | (rd(0x5d) << 16), (2 * GiB) / 65536);
});

test('memory size bytes for a small guest', () => {
  const { rd } = setup({ memoryBelow4g: 32 * MiB });
  assert.equal(rd(0x17) | (rd(0x18) << 8), 31 * 1024);
  assert.equal(rd(0x34) | (rd(0x35) << 8), 256);
  assert.equal(rd(0x5b) | rd(0x5c) | rd(0x5d), 0);
  const tiny = setup({ memoryBelow4g: 8 * MiB });
  assert.equal(tiny.rd(0x17) | (tiny.rd(0x18) << 8), 7 * 1024);
  assert.equal(tiny.rd(0x34) | (tiny.rd(0x35) << 8), 0);
});

test('NVRAM bytes are writable; C and D are read-only; UIP cannot be set', () => {
  const { rd, wr } = setup();
  wr(0x40, 0x5a);
  assert.equal(rd(0x40), 0x5a);
  wr(0x0d, 0x00);
  assert.equal(rd(0x0d), 0x80);
  wr(0x0a, 0xa6);
  assert.equal(rd(0x0a), 0x26);
});

test('guest garbage (invalid BCD, odd sizes) never throws', () => {
  const { bus, rd, wr } = setup();
  wr(0x0b, 0x82);
  for (const i of [0, 2, 4, 6, 7, 8, 9, 0x32]) wr(i, 0xff);
  wr(0x0b, 0x02);
  rd(0x00);
  for (let i = 0; i < 256; i++) {
    bus.write(PORT_CMOS_INDEX, 4, i);
    bus.write(PORT_CMOS_DATA, 2, 0xffff);
    bus.read(PORT_CMOS_DATA, 1);
  }
});

test('bad options are caller errors', () => {
  const bad = (o: unknown) => assert.throws(() => new Cmos(o as never), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_INVALID_ARG');
  bad({ memoryBelow4g: -1, memoryAbove4g: 0 });
  bad({ memoryBelow4g: 5 * GiB, memoryAbove4g: 0 });
  bad({ memoryBelow4g: MiB, memoryAbove4g: 0.5 });
  bad({ memoryBelow4g: MiB, memoryAbove4g: 0, now: 3 });
  // Default time source is the host clock.
  const real = new Cmos({ memoryBelow4g: 64 * MiB, memoryAbove4g: 0 });
  assert.ok(Math.abs(real.time.getTime() - Date.now()) < 5000);
});
