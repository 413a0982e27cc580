import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BusDevice } from '../../lib/bus/device.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { PCI_IO_END, PCI_IO_START, PCI_MMIO_END, PCI_MMIO_START, pciIntxGsi } from '../../lib/platform/layout.js';
import { PciHostBridge, type BarKind, type BarMapper } from '../../lib/devices/pci/index.js';
import { Rtl8139 } from '../../lib/devices/rtl8139/index.js';

class FakeMapper implements BarMapper {
  readonly log: string[] = [];
  readonly live = new Map<BusDevice, { kind: BarKind; base: number; length: number }>();
  map(kind: BarKind, base: number, length: number, device: BusDevice, name: string): void {
    assert.match(name, /BAR\d$/);
    for (const m of this.live.values()) {
      if (m.kind === kind && base < m.base + m.length && m.base < base + length) throw new Error('overlap');
    }
    this.live.set(device, { kind, base, length });
    this.log.push(`map ${kind} 0x${base.toString(16)} ${length}`);
  }
  unmap(kind: BarKind, device: BusDevice): void {
    this.live.delete(device);
    this.log.push(`unmap ${kind}`);
  }
  /** Coalesced zones currently on, as "kind addr+size". */
  readonly zones = new Set<string>();
  coalesce(kind: BarKind, addr: number, size: number, on: boolean): void {
    const z = `${kind} 0x${addr.toString(16)}+${size}`;
    if (on) {
      assert.equal(this.zones.has(z), false, `zone ${z} registered twice`);
      this.zones.add(z);
    } else {
      assert.equal(this.zones.delete(z), true, `zone ${z} unregistered but never registered`);
    }
    this.log.push(`${on ? 'coalesce' : 'uncoalesce'} ${z}`);
  }
}

const clock = { nowNs: () => 0n };
const noTimers = { schedule: () => () => {} };

function cfgAddr(slot: number, reg: number, fn = 0, bus = 0): number {
  return (0x8000_0000 | (bus << 16) | (slot << 11) | (fn << 8) | (reg & 0xfc)) >>> 0;
}

function setup() {
  const mapper = new FakeMapper();
  const irqs = new Map<number, RecordingIrqLine>();
  const resets: number[] = [];
  const hb = new PciHostBridge({
    mapper,
    ioWindow: { start: PCI_IO_START, end: PCI_IO_END },
    mmioWindow: { start: PCI_MMIO_START, end: PCI_MMIO_END },
    intxGsi: pciIntxGsi,
    irqForGsi: (gsi) => { const l = new RecordingIrqLine(); irqs.set(gsi, l); return l; },
    onReset: (v) => resets.push(v),
  });
  const nic = new Rtl8139({ mem: fakeGuestMemory([{ guestPhysAddr: 0, size: 0x10000 }]), clock, timers: noTimers, revision: 0x10 });
  const slot = hb.addDevice(nic);
  const cfgRead = (s: number, reg: number, size = 4): number => {
    hb.write(0, 4, cfgAddr(s, reg));
    return hb.read(4 + (reg & 3), size);
  };
  const cfgWrite = (s: number, reg: number, size: number, value: number): void => {
    hb.write(0, 4, cfgAddr(s, reg));
    hb.write(4 + (reg & 3), size, value);
  };
  return { mapper, irqs, resets, hb, nic, slot, cfgRead, cfgWrite };
}

test('CONFIG_ADDRESS reads back with reserved bits clear; host bridge at 00:00.0', () => {
  const { hb, cfgRead } = setup();
  hb.write(0, 4, 0x8000_0803);
  assert.equal(hb.read(0, 4), 0x8000_0800);
  assert.equal(cfgRead(0, 0), 0x1237_8086);
  assert.equal(cfgRead(0, 0x08) >>> 8, 0x060000);
});

test('enable bit clear, other buses, functions and empty slots read all-ones', () => {
  const { hb, cfgRead } = setup();
  hb.write(0, 4, 0x0000_0800); // enable bit clear
  assert.equal(hb.read(4, 4), 0xffff_ffff);
  hb.write(0, 4, cfgAddr(1, 0, 0, 1));
  assert.equal(hb.read(4, 4), 0xffff_ffff);
  hb.write(0, 4, cfgAddr(1, 0, 1));
  assert.equal(hb.read(4, 2), 0xffff);
  assert.equal(cfgRead(7, 0), 0xffff_ffff);
  assert.equal(cfgRead(7, 0, 1), 0xff);
});

test('RTL8139 identity, byte/word access at CONFIG_DATA offsets, interrupt line and pin', () => {
  const { cfgRead, cfgWrite, slot } = setup();
  assert.equal(slot, 1);
  assert.equal(cfgRead(1, 0), 0x8139_10ec);
  assert.equal(cfgRead(1, 2, 2), 0x8139);
  assert.equal(cfgRead(1, 3, 1), 0x81);
  assert.equal(cfgRead(1, 0x08, 1), 0x10);
  assert.equal(cfgRead(1, 0x08) >>> 8, 0x020000);
  assert.equal(cfgRead(1, 0x3d, 1), 1);
  assert.equal(cfgRead(1, 0x3c, 1), pciIntxGsi(1, 1));
  // Read-only fields ignore writes.
  cfgWrite(1, 0, 4, 0);
  assert.equal(cfgRead(1, 0), 0x8139_10ec);
});

test('BAR sizing: all-ones write reads back the size mask with the I/O flag', () => {
  const { cfgRead, cfgWrite, mapper } = setup();
  cfgWrite(1, 0x10, 4, 0xffff_ffff);
  assert.equal(cfgRead(1, 0x10), 0xffff_ff01);
  cfgWrite(1, 0x14, 4, 0xffff_ffff);
  assert.equal(cfgRead(1, 0x14), 0xffff_ff00);
  assert.equal(mapper.live.size, 0, 'nothing decoded while the command register is off');
  cfgWrite(1, 0x30, 4, 0xffff_ffff);
  assert.equal(cfgRead(1, 0x30), 0, 'no expansion ROM');
});

test('assignResources programs and enables BARs; remapping and disabling go through the mapper', () => {
  const { hb, nic, cfgRead, cfgWrite, mapper } = setup();
  hb.assignResources();
  assert.equal(nic.barAddress(0), PCI_IO_START);
  assert.equal(nic.barAddress(1), PCI_MMIO_START);
  assert.equal(cfgRead(1, 0x10), PCI_IO_START | 1);
  assert.equal(cfgRead(1, 0x04, 2) & 0x7, 0x7);
  assert.deepEqual(mapper.live.get(nic.ioBar), { kind: 'io', base: PCI_IO_START, length: 256 });
  assert.deepEqual(mapper.live.get(nic.mmioBar), { kind: 'mmio', base: PCI_MMIO_START, length: 256 });
  // Move BAR1.
  cfgWrite(1, 0x14, 4, 0xd000_0000);
  assert.equal(mapper.live.get(nic.mmioBar)?.base, 0xd000_0000);
  // Memory decode off: BAR1 unmapped, BAR0 stays.
  cfgWrite(1, 0x04, 2, 0x5);
  assert.equal(mapper.live.has(nic.mmioBar), false);
  assert.equal(mapper.live.has(nic.ioBar), true);
  cfgWrite(1, 0x04, 2, 0x7);
  assert.equal(mapper.live.get(nic.mmioBar)?.base, 0xd000_0000);
  // Sizing while decoding is on must not map the all-ones pattern.
  cfgWrite(1, 0x14, 4, 0xffff_ffff);
  assert.equal(mapper.live.has(nic.mmioBar), false);
  cfgWrite(1, 0x14, 4, 0xd000_0000);
  // Overlap refused by the bus: counted, never thrown.
  cfgWrite(1, 0x14, 4, 0); // unassigned
  assert.equal(mapper.live.has(nic.mmioBar), false);
  // Register access through a mapped BAR reaches the NIC.
  assert.equal(nic.ioBar.read(0x40, 4) & 0x7cc0_0000, 0x7400_0000);
});

test('the RTL8139\'s TSD0-3, CAPR and IntrMask/IntrStatus writes are coalesced wherever its BARs decode, and nowhere else', () => {
  const { hb, nic, cfgWrite, mapper } = setup();
  assert.equal(mapper.zones.size, 0);
  hb.assignResources();
  assert.deepEqual([...mapper.zones].sort(), [
    `io 0x${(PCI_IO_START + 0x10).toString(16)}+16`, `io 0x${(PCI_IO_START + 0x38).toString(16)}+2`, `io 0x${(PCI_IO_START + 0x3c).toString(16)}+4`,
    `mmio 0x${(PCI_MMIO_START + 0x10).toString(16)}+16`, `mmio 0x${(PCI_MMIO_START + 0x38).toString(16)}+2`, `mmio 0x${(PCI_MMIO_START + 0x3c).toString(16)}+4`]);
  // A moved BAR takes its zone along: the old one is dropped before the new one is added.
  cfgWrite(1, 0x14, 4, 0xd000_0000);
  assert.ok(mapper.zones.has('mmio 0xd000003c+4'));
  assert.equal(mapper.zones.has(`mmio 0x${(PCI_MMIO_START + 0x3c).toString(16)}+4`), false);
  const i = mapper.log.indexOf(`uncoalesce mmio 0x${(PCI_MMIO_START + 0x3c).toString(16)}+4`);
  assert.ok(i >= 0 && i < mapper.log.indexOf('coalesce mmio 0xd000003c+4'));
  // Decode off, sizing, unassigned: no zone for a BAR that does not decode.
  cfgWrite(1, 0x04, 2, 0x0);
  assert.equal(mapper.zones.size, 0);
  cfgWrite(1, 0x04, 2, 0x3);
  assert.equal(mapper.zones.size, 6);
  cfgWrite(1, 0x14, 4, 0xffff_ffff);
  assert.equal(mapper.zones.has('mmio 0xd000003c+4'), false);
  assert.equal(nic.mapFailures, 0);
});

test('a BAR\'s coalesced zone must lie inside the BAR', () => {
  class Bad extends Rtl8139 {
    constructor() {
      super({ mem: fakeGuestMemory([{ guestPhysAddr: 0, size: 0x1000 }]), clock, timers: noTimers });
      this.defineBar(2, { kind: 'mmio', size: 16, device: this.mmioBar, coalescedWrites: [{ offset: 12, size: 8 }] });
    }
  }
  assert.throws(() => new Bad(), { code: 'ERR_INVALID_ARG', message: /coalesced zone/ });
});

test('a mapper refusing a BAR is counted, not thrown', () => {
  const { hb, nic, cfgWrite, mapper } = setup();
  hb.assignResources();
  mapper.map('io', 0x1000, 0x100, { read: () => 0, write: () => {} }, 'other BAR0');
  cfgWrite(1, 0x10, 4, 0x1000);
  assert.equal(nic.mapFailures, 1);
  assert.equal(nic.barMappedAt(0), undefined);
});

test('INTx follows the device level, INTx-disable and status bit 3', () => {
  const { hb, nic, irqs, cfgRead, cfgWrite } = setup();
  hb.assignResources();
  const line = irqs.get(pciIntxGsi(1, 1))!;
  nic.ioBar.write(0x3c, 2, 0x0004); // IntrMask = TxOK
  nic.ioBar.write(0x37, 1, 0x04); // TE
  nic.ioBar.write(0x10, 4, 0); // size 0: TxErr, not TxOK
  assert.equal(line.level, false);
  nic.ioBar.write(0x3c, 2, 0x000c);
  assert.equal(line.level, true);
  assert.equal(cfgRead(1, 0x06, 2) & 0x08, 0x08);
  cfgWrite(1, 0x04, 2, 0x0407); // INTx disable
  assert.equal(line.level, false);
  assert.equal(cfgRead(1, 0x06, 2) & 0x08, 0x08, 'status still shows the pending interrupt');
  cfgWrite(1, 0x04, 2, 0x0007);
  assert.equal(line.level, true);
  nic.ioBar.write(0x3e, 2, 0xffff);
  assert.equal(line.level, false);
  assert.equal(cfgRead(1, 0x06, 2) & 0x08, 0);
});

test('slots: explicit, taken, auto-assigned; reset control register at 0xCF9', () => {
  const { hb, resets } = setup();
  const other = new Rtl8139({ mem: fakeGuestMemory([{ guestPhysAddr: 0, size: 0x1000 }]), clock, timers: noTimers });
  assert.throws(() => hb.addDevice(other, 1), { code: 'ERR_PCI_SLOT_TAKEN' });
  assert.equal(hb.addDevice(other, 5), 5);
  assert.equal(hb.gsiOf(5), pciIntxGsi(5, 1));
  hb.write(1, 1, 0x02);
  assert.deepEqual(resets, []);
  hb.write(1, 1, 0x06);
  assert.deepEqual(resets, [0x06]);
  hb.assignResources();
  assert.equal(other.barAddress(0), PCI_IO_START + 0x100);
  assert.equal(other.barAddress(1), PCI_MMIO_START + 0x100);
});

test('functions sharing a GSI (slots 1 and 5) drive it wired-OR: one deasserting leaves it up for the other', () => {
  const lines = new Map<number, RecordingIrqLine>();
  const bridge = new PciHostBridge({
    mapper: new FakeMapper(),
    ioWindow: { start: PCI_IO_START, end: PCI_IO_END },
    mmioWindow: { start: PCI_MMIO_START, end: PCI_MMIO_END },
    intxGsi: pciIntxGsi,
    irqForGsi: (gsi) => {
      let l = lines.get(gsi);
      if (l === undefined) lines.set(gsi, (l = new RecordingIrqLine()));
      return l;
    },
  });
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x10000 }]);
  const a = new Rtl8139({ mem, clock, timers: noTimers });
  const b = new Rtl8139({ mem, clock, timers: noTimers });
  bridge.addDevice(a, 1);
  bridge.addDevice(b, 5);
  assert.equal(pciIntxGsi(1, 1), pciIntxGsi(5, 1));
  const line = lines.get(pciIntxGsi(1, 1))!;
  const swInt = (nic: Rtl8139) => {
    nic.mmioBar.write(0x3c, 2, 0xffff); // IntrMask
    nic.mmioBar.write(0xd9, 1, 0x01); // TxPoll.FSWInt
  };
  const ack = (nic: Rtl8139) => nic.mmioBar.write(0x3e, 2, 0xffff); // IntrStatus, write 1 to clear
  swInt(a);
  swInt(b);
  assert.equal(line.level, true);
  ack(b);
  assert.equal(b.intxAsserted, false);
  assert.equal(line.level, true, 'slot 1 still asserts INTA#');
  ack(a);
  assert.equal(line.level, false);
  swInt(b);
  assert.equal(line.level, true);
  // INTx-disable on the asserting function releases the line too.
  b.writeConfig(0x04, 2, b.command | 0x400);
  assert.equal(line.level, false);
});
