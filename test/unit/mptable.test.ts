// MP spec 1.4 tables as Linux's mpparse reads them: floating pointer found in the last KiB of
// base memory, checksums, entry counts and the interrupt entries' fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory, type GuestMemory } from '../../lib/kvm/memory.js';
import {
  MP_BUS_ID_ISA, MP_BUS_ID_PCI, MP_EXTINT, MP_INT, MP_NMI, MPTABLE_END, mpTableMaxCpus, writeMpTable,
} from '../../lib/boot/mptable.js';
import { IOAPIC_START, IRQ_SCI, LAPIC_START, MPTABLE_START, pciIntxGsi } from '../../lib/platform/layout.js';
import type { NodeKvmError } from '../../lib/errors.js';

const sums = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);
const ascii = (mem: GuestMemory, a: number, n: number): string => String.fromCharCode(...mem.read(a, n));

interface Parsed {
  processors: Array<{ apicId: number; flags: number }>;
  buses: Array<{ id: number; type: string }>;
  ioapics: Array<{ id: number; version: number; flags: number; address: number }>;
  ioIntrs: Array<{ irqType: number; flags: number; bus: number; busIrq: number; apic: number; pin: number }>;
  lIntrs: Array<{ irqType: number; bus: number; apic: number; lint: number }>;
}

/** Follow the floating pointer like mpparse: scan 0x9FC00 for "_MP_", check, parse entries. */
function parse(mem: GuestMemory): Parsed {
  let mpf = -1;
  for (let a = 639 * 0x400; a < 640 * 0x400; a += 16) if (ascii(mem, a, 4) === '_MP_') { mpf = a; break; }
  assert.equal(mpf, MPTABLE_START);
  assert.equal(sums(mem.read(mpf, 16)), 0, 'floating pointer checksum');
  assert.equal(mem.readU8(mpf + 8), 1, 'length in paragraphs');
  assert.equal(mem.readU8(mpf + 9), 4, 'spec 1.4');
  assert.equal(mem.readU8(mpf + 11), 0, 'feature1: config table present');
  const mpc = mem.readU32(mpf + 4);
  assert.equal(ascii(mem, mpc, 4), 'PCMP');
  const len = mem.readU16(mpc + 4);
  assert.ok(mpc + len <= MPTABLE_END);
  assert.equal(sums(mem.read(mpc, len)), 0, 'config table checksum');
  assert.equal(mem.readU8(mpc + 6), 4);
  assert.equal(mem.readU32(mpc + 36), LAPIC_START);
  const count = mem.readU16(mpc + 34);
  const p: Parsed = { processors: [], buses: [], ioapics: [], ioIntrs: [], lIntrs: [] };
  let off = mpc + 44;
  for (let i = 0; i < count; i++) {
    const type = mem.readU8(off);
    if (type === 0) {
      p.processors.push({ apicId: mem.readU8(off + 1), flags: mem.readU8(off + 3) });
      off += 20;
      continue;
    }
    if (type === 1) p.buses.push({ id: mem.readU8(off + 1), type: ascii(mem, off + 2, 6) });
    else if (type === 2) {
      p.ioapics.push({ id: mem.readU8(off + 1), version: mem.readU8(off + 2), flags: mem.readU8(off + 3), address: mem.readU32(off + 4) });
    } else if (type === 3) {
      p.ioIntrs.push({ irqType: mem.readU8(off + 1), flags: mem.readU16(off + 2), bus: mem.readU8(off + 4),
        busIrq: mem.readU8(off + 5), apic: mem.readU8(off + 6), pin: mem.readU8(off + 7) });
    } else if (type === 4) {
      p.lIntrs.push({ irqType: mem.readU8(off + 1), bus: mem.readU8(off + 4), apic: mem.readU8(off + 6), lint: mem.readU8(off + 7) });
    } else assert.fail(`unknown entry type ${type}`);
    off += 8;
  }
  assert.equal(off, mpc + len, 'entries fill the base table exactly');
  return p;
}

function build(cpus: number, pciIrqs: Array<{ slot: number; pin: number; gsi: number }> = [], irq0Gsi?: 0 | 2): Parsed {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0xa0000 }]);
  const info = writeMpTable(mem, { cpus, pciIrqs, irq0Gsi });
  const parsed = parse(mem);
  const n = parsed.processors.length + parsed.buses.length + parsed.ioapics.length + parsed.ioIntrs.length + parsed.lIntrs.length;
  assert.equal(info.entryCount, n);
  return parsed;
}

for (const cpus of [1, 2, 8]) {
  test(`MP table for ${cpus} vCPU(s): processors, buses, IOAPIC, entry counts`, () => {
    const p = build(cpus);
    assert.deepEqual(p.processors.map((x) => x.apicId), [...Array(cpus).keys()]);
    assert.equal(p.processors[0]!.flags, 0x03, 'BSP enabled');
    for (const x of p.processors.slice(1)) assert.equal(x.flags, 0x01);
    assert.deepEqual(p.buses, [{ id: MP_BUS_ID_PCI, type: 'PCI   ' }, { id: MP_BUS_ID_ISA, type: 'ISA   ' }]);
    assert.deepEqual(p.ioapics, [{ id: cpus, version: 0x11, flags: 1, address: IOAPIC_START }]);
    assert.equal(p.ioIntrs.length, 15, 'ISA IRQs 0-15 without the cascade');
    assert.equal(p.lIntrs.length, 2);
  });
}

test('ISA interrupts: identity on KVM default routing, IRQ0 on pin 2 when asked, SCI level', () => {
  const p = build(1);
  const isa = p.ioIntrs.filter((x) => x.bus === MP_BUS_ID_ISA);
  assert.ok(isa.every((x) => x.irqType === MP_INT && x.apic === 1));
  assert.deepEqual(isa.map((x) => [x.busIrq, x.pin]), [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15].map((i) => [i, i]));
  assert.equal(isa.find((x) => x.busIrq === IRQ_SCI)!.flags, 0x0d, 'SCI level/active-high');
  assert.equal(isa.find((x) => x.busIrq === 4)!.flags, 0, 'others conform to ISA');
  const moved = build(1, [], 2).ioIntrs.find((x) => x.busIrq === 0)!;
  assert.equal(moved.pin, 2);
});

test('PCI INTx entries: source irq (slot<<2)|(pin-1), level/active-low, to the given GSI', () => {
  const routes = [{ slot: 1, pin: 1, gsi: pciIntxGsi(1, 1) }, { slot: 3, pin: 2, gsi: pciIntxGsi(3, 2) }];
  const p = build(2, routes);
  const pci = p.ioIntrs.filter((x) => x.bus === MP_BUS_ID_PCI);
  assert.deepEqual(pci, [
    { irqType: MP_INT, flags: 0x0f, bus: 0, busIrq: (1 << 2) | 0, apic: 2, pin: 17 },
    { irqType: MP_INT, flags: 0x0f, bus: 0, busIrq: (3 << 2) | 1, apic: 2, pin: 16 },
  ]);
});

test('local interrupts: LINT0 ExtINT and LINT1 NMI on every local APIC', () => {
  const p = build(4);
  assert.deepEqual(p.lIntrs, [
    { irqType: MP_EXTINT, bus: MP_BUS_ID_ISA, apic: 0xff, lint: 0 },
    { irqType: MP_NMI, bus: MP_BUS_ID_ISA, apic: 0xff, lint: 1 },
  ]);
});

test('the table fits below 0xA0000 up to mpTableMaxCpus and refuses more', () => {
  const routes = [0, 1, 2, 3].map((slot) => ({ slot, pin: 1, gsi: pciIntxGsi(slot, 1) }));
  const max = mpTableMaxCpus(routes.length);
  assert.ok(max >= 32, `room for at least 32 vCPUs, got ${max}`);
  assert.equal(build(max, routes).processors.length, max);
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0xa0000 }]);
  assert.throws(() => writeMpTable(mem, { cpus: max + 1, pciIrqs: routes }), (e: NodeKvmError) => e.code === 'ERR_TOO_MANY_CPUS');
  assert.throws(() => writeMpTable(mem, { cpus: 0 }), (e: NodeKvmError) => e.code === 'ERR_INVALID_ARG');
  assert.throws(() => writeMpTable(mem, { cpus: 1, pciIrqs: [{ slot: 0, pin: 5, gsi: 16 }] }),
    (e: NodeKvmError) => e.code === 'ERR_INVALID_PCI_IRQ');
  assert.throws(() => writeMpTable(mem, { cpus: 1, pciIrqs: [{ slot: 0, pin: 1, gsi: 24 }] }),
    (e: NodeKvmError) => e.code === 'ERR_INVALID_PCI_IRQ');
});
