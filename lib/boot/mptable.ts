// Intel MultiProcessor Specification 1.4 tables: the MP Floating Pointer Structure and the MP
// Configuration Table it points to, written at MPTABLE_START (the last KiB of base memory,
// which Linux's mpparse scans). Linux reads these only when it does not use ACPI's MADT
// (acpi=off, or a kernel without ACPI), so they describe the same machine as the MADT.
//
// Interrupt routing mirrors KVM's default GSI routing (no KVM_SET_GSI_ROUTING): ISA IRQ n
// reaches IOAPIC pin n, so IRQ0 (the PIT) is on pin 0 unless the machine moves it to pin 2.
import type { GuestMemory } from '../kvm/memory.js';
import { InvalidArgumentError } from '../errors.js';
import { IOAPIC_PINS, IOAPIC_START, IRQ_SCI, LAPIC_START, MPTABLE_START } from '../platform/layout.js';

/** The MP table must end below the VGA hole: 1 KiB from MPTABLE_START. */
export const MPTABLE_END = 0xa0000;

// Sizes (MP spec 1.4 §4).
const MPF_SIZE = 16; // MP Floating Pointer Structure
const MPC_HEADER_SIZE = 44; // MP Configuration Table Header
const PROCESSOR_ENTRY_SIZE = 20;
const SMALL_ENTRY_SIZE = 8; // bus, I/O APIC, I/O interrupt, local interrupt entries

// Entry types (Table 4-3).
export const MP_PROCESSOR = 0;
export const MP_BUS = 1;
export const MP_IOAPIC = 2;
export const MP_IOINTR = 3;
export const MP_LINTR = 4;
// Interrupt types (Table 4-8).
export const MP_INT = 0;
export const MP_NMI = 1;
export const MP_EXTINT = 3;
// I/O interrupt flags: PO bits 1:0, EL bits 3:2 (Table 4-9).
export const MP_IRQ_CONFORMING = 0x0;
export const MP_IRQ_LEVEL_HIGH = 0x1 | (0x3 << 2);
export const MP_IRQ_LEVEL_LOW = 0x3 | (0x3 << 2);
// Processor entry CPU flags.
const CPU_ENABLED = 0x01;
const CPU_BOOTPROCESSOR = 0x02;

/** Bus ids. Linux matches PCI interrupt entries by bus id == PCI bus number, so PCI is 0. */
export const MP_BUS_ID_PCI = 0;
export const MP_BUS_ID_ISA = 1;

export const LAPIC_VERSION = 0x14; // integrated local APIC
export const IOAPIC_VERSION = 0x11; // 82093AA-compatible, as KVM's in-kernel IOAPIC reports
/** CPU signature (family 6) and feature flags (FPU | APIC) for the processor entries. */
const CPU_SIGNATURE = 0x600;
const CPU_FEATURES = (1 << 0) | (1 << 9);
/** ISA IRQs with an I/O interrupt entry: 0-15 except the 8259 cascade (IRQ2). */
const ISA_IRQS = [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] as const;

export interface MpPciIrq {
  slot: number;
  /** 1 = INTA# ... 4 = INTD#, as in PCI config space Interrupt Pin. */
  pin: number;
  gsi: number;
}

export interface MpTableOptions {
  cpus: number;
  pciIrqs?: readonly MpPciIrq[];
  /** IOAPIC pin the PIT's IRQ0 arrives on: 0 with KVM's default routing, 2 with QEMU-style routing. */
  irq0Gsi?: 0 | 2;
}

export interface MpTableInfo {
  floatingPointer: number;
  configTable: number;
  configLength: number;
  entryCount: number;
}

function fixedBytes(cpus: number, pciIrqs: number): number {
  return MPF_SIZE + MPC_HEADER_SIZE + PROCESSOR_ENTRY_SIZE * cpus
    + SMALL_ENTRY_SIZE * (2 /* buses */ + 1 /* IOAPIC */ + ISA_IRQS.length + pciIrqs + 2 /* LINT0, LINT1 */);
}

/**
 * Most vCPUs the table can describe with `pciIrqCount` PCI interrupt entries: space runs out
 * first (1 KiB holds about 38 processors with 4 PCI routes), and APIC ids are 8 bits with the
 * IOAPIC taking id `cpus` and 0xFF meaning broadcast. Bigger machines must rely on the MADT.
 */
export function mpTableMaxCpus(pciIrqCount = 0): number {
  const room = MPTABLE_END - MPTABLE_START - fixedBytes(0, pciIrqCount);
  return Math.max(0, Math.min(254, Math.floor(room / PROCESSOR_ENTRY_SIZE)));
}

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** Write the MP floating pointer and configuration table. Throws ERR_TOO_MANY_CPUS if they do not fit. */
export function writeMpTable(memory: GuestMemory, o: MpTableOptions): MpTableInfo {
  const pciIrqs = o.pciIrqs ?? [];
  const irq0Gsi = o.irq0Gsi ?? 0;
  if (!Number.isInteger(o.cpus) || o.cpus < 1) {
    throw new InvalidArgumentError(`cpus must be a positive integer, got ${o.cpus}`);
  }
  if (irq0Gsi !== 0 && irq0Gsi !== 2) throw new InvalidArgumentError(`irq0Gsi must be 0 or 2, got ${String(irq0Gsi)}`);
  for (const r of pciIrqs) {
    const ok = Number.isInteger(r.slot) && r.slot >= 0 && r.slot < 32 && Number.isInteger(r.pin) && r.pin >= 1
      && r.pin <= 4 && Number.isInteger(r.gsi) && r.gsi >= 0 && r.gsi < IOAPIC_PINS;
    if (!ok) {
      throw new InvalidArgumentError(
        `PCI IRQ route {slot: ${r.slot}, pin: ${r.pin}, gsi: ${r.gsi}} needs slot 0..31, pin 1..4, gsi 0..${IOAPIC_PINS - 1}`,
        'ERR_INVALID_PCI_IRQ');
    }
  }
  const max = mpTableMaxCpus(pciIrqs.length);
  if (o.cpus > max) {
    throw new InvalidArgumentError(
      `the MP table fits at most ${max} vCPUs with ${pciIrqs.length} PCI routes, got ${o.cpus}`, 'ERR_TOO_MANY_CPUS');
  }

  const total = fixedBytes(o.cpus, pciIrqs.length);
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  const ascii = (off: number, s: string, width: number): void => {
    for (let i = 0; i < width; i++) buf[off + i] = i < s.length ? s.charCodeAt(i) : 0x20;
  };
  const configAddr = MPTABLE_START + MPF_SIZE;
  const ioapicId = o.cpus;

  // MP Floating Pointer Structure. Feature bytes all 0: a configuration table is present, and
  // feature2 bit 7 (IMCR) clear selects virtual-wire mode, which is what KVM's LAPIC emulates.
  ascii(0, '_MP_', 4);
  dv.setUint32(4, configAddr, true);
  dv.setUint8(8, 1); // length in 16-byte units
  dv.setUint8(9, 4); // spec revision 1.4

  // Entries follow the 44-byte header; processors must come first (spec §4.3).
  let off = MPF_SIZE + MPC_HEADER_SIZE;
  let count = 0;
  const small = (type: number, b1: number, w2: number, b4: number, b5: number, b6: number, b7: number): void => {
    dv.setUint8(off, type);
    dv.setUint8(off + 1, b1);
    dv.setUint16(off + 2, w2, true);
    dv.setUint8(off + 4, b4);
    dv.setUint8(off + 5, b5);
    dv.setUint8(off + 6, b6);
    dv.setUint8(off + 7, b7);
    off += SMALL_ENTRY_SIZE;
    count++;
  };
  for (let cpu = 0; cpu < o.cpus; cpu++) {
    dv.setUint8(off, MP_PROCESSOR);
    dv.setUint8(off + 1, cpu); // local APIC id
    dv.setUint8(off + 2, LAPIC_VERSION);
    dv.setUint8(off + 3, CPU_ENABLED | (cpu === 0 ? CPU_BOOTPROCESSOR : 0));
    dv.setUint32(off + 4, CPU_SIGNATURE, true);
    dv.setUint32(off + 8, CPU_FEATURES, true);
    off += PROCESSOR_ENTRY_SIZE;
    count++;
  }
  for (const [id, type] of [[MP_BUS_ID_PCI, 'PCI'], [MP_BUS_ID_ISA, 'ISA']] as const) {
    dv.setUint8(off, MP_BUS);
    dv.setUint8(off + 1, id);
    ascii(off + 2, type, 6);
    off += SMALL_ENTRY_SIZE;
    count++;
  }
  // I/O APIC entry: type, id, version, flags (EN), address.
  dv.setUint8(off, MP_IOAPIC);
  dv.setUint8(off + 1, ioapicId);
  dv.setUint8(off + 2, IOAPIC_VERSION);
  dv.setUint8(off + 3, 0x01);
  dv.setUint32(off + 4, IOAPIC_START, true);
  off += SMALL_ENTRY_SIZE;
  count++;
  // I/O interrupt entries: type, irq type, flags, source bus, source bus irq, dest IOAPIC, pin.
  for (const irq of ISA_IRQS) {
    const pin = irq === 0 ? irq0Gsi : irq;
    // The SCI is level/active-high, like the MADT's override says; the rest conform to ISA (edge, high).
    const flags = irq === IRQ_SCI ? MP_IRQ_LEVEL_HIGH : MP_IRQ_CONFORMING;
    small(MP_IOINTR, MP_INT, flags, MP_BUS_ID_ISA, irq, ioapicId, pin);
  }
  for (const r of pciIrqs) {
    // PCI source bus irq: bits 6:2 device number, bits 1:0 pin (0 = INTA#).
    small(MP_IOINTR, MP_INT, MP_IRQ_LEVEL_LOW, MP_BUS_ID_PCI, (r.slot << 2) | (r.pin - 1), ioapicId, r.gsi);
  }
  // Local interrupt entries: LINT0 takes the 8259's INTR (ExtINT), LINT1 is NMI, on every
  // local APIC (destination 0xFF).
  small(MP_LINTR, MP_EXTINT, MP_IRQ_CONFORMING, MP_BUS_ID_ISA, 0, 0xff, 0);
  small(MP_LINTR, MP_NMI, MP_IRQ_CONFORMING, MP_BUS_ID_ISA, 0, 0xff, 1);

  // MP Configuration Table Header.
  const hdr = MPF_SIZE;
  const configLength = total - MPF_SIZE;
  ascii(hdr, 'PCMP', 4);
  dv.setUint16(hdr + 4, configLength, true); // base table length
  dv.setUint8(hdr + 6, 4); // spec revision 1.4
  ascii(hdr + 8, 'NODE-KVM', 8); // OEM ID
  ascii(hdr + 16, 'node-kvm', 12); // product ID
  dv.setUint16(hdr + 34, count, true); // entry count
  dv.setUint32(hdr + 36, LAPIC_START, true);
  // Extended table length and checksum stay 0: no extended entries.
  dv.setUint8(hdr + 7, checksum(buf.subarray(hdr, total)));
  dv.setUint8(10, checksum(buf.subarray(0, MPF_SIZE)));

  memory.fill(MPTABLE_START, MPTABLE_END - MPTABLE_START, 0);
  memory.write(MPTABLE_START, buf);
  return { floatingPointer: MPTABLE_START, configTable: configAddr, configLength, entryCount: count };
}
