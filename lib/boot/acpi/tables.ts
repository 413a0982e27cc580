// ACPI table writers: RSDP, RSDT/XSDT, FADT, FACS, MADT and the DSDT wrapper. Each builder
// returns the finished table bytes (checksum filled in); index.ts decides where they live.
// Field names and offsets are ACPI 6.5's (§5.2.5 RSDP, §5.2.6 header, §5.2.9 FADT,
// §5.2.10 FACS, §5.2.12 MADT).
import {
  ACPI_RESET_VALUE, IOAPIC_START, IRQ_SCI, LAPIC_START, PORT_ACPI_GPE0, PORT_ACPI_GPE0_LEN,
  PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM_TMR, PORT_ACPI_RESET,
} from '../../platform/layout.js';

export const OEM_ID = 'NODKVM'; // 6 chars
export const OEM_TABLE_ID = 'NODE-KVM'; // 8 chars
export const CREATOR_ID = 'NKVM';
export const SDT_HEADER_SIZE = 36;
export const RSDP_SIZE = 36;
export const FADT_SIZE = 276; // revision 6 layout, up to Hypervisor Vendor Identity
export const FACS_SIZE = 64;

/** Byte that makes `bytes` sum to zero mod 256 once stored in the checksum field (which must be 0). */
export function acpiChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** A little-endian writer over a fresh table buffer. */
export class TableBuilder {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }
  u8(off: number, v: number): this { this.dv.setUint8(off, v); return this; }
  u16(off: number, v: number): this { this.dv.setUint16(off, v, true); return this; }
  u32(off: number, v: number): this { this.dv.setUint32(off, v >>> 0, true); return this; }
  u64(off: number, v: number | bigint): this { this.dv.setBigUint64(off, BigInt(v), true); return this; }
  ascii(off: number, s: string, width: number): this {
    for (let i = 0; i < width; i++) this.bytes[off + i] = i < s.length ? s.charCodeAt(i) : 0x20;
    return this;
  }
  set(off: number, data: Uint8Array): this { this.bytes.set(data, off); return this; }
}

/** Fill the standard System Description Table header (§5.2.6) and the table checksum. */
function finishSdt(t: TableBuilder, signature: string, revision: number): Uint8Array {
  t.ascii(0, signature, 4).u32(4, t.bytes.length).u8(8, revision).u8(9, 0)
    .ascii(10, OEM_ID, 6).ascii(16, OEM_TABLE_ID, 8).u32(24, 1)
    .ascii(28, CREATOR_ID, 4).u32(32, 1);
  t.u8(9, acpiChecksum(t.bytes));
  return t.bytes;
}

/** RSDP revision 2 (§5.2.5.3): checksum covers the first 20 bytes, extended checksum all 36. */
export function buildRsdp(rsdtAddress: number, xsdtAddress: number): Uint8Array {
  const t = new TableBuilder(RSDP_SIZE);
  t.ascii(0, 'RSD PTR ', 8).ascii(9, OEM_ID, 6).u8(15, 2).u32(16, rsdtAddress).u32(20, RSDP_SIZE)
    .u64(24, xsdtAddress);
  t.u8(8, acpiChecksum(t.bytes.subarray(0, 20)));
  t.u8(32, acpiChecksum(t.bytes));
  return t.bytes;
}

/** XSDT: 64-bit pointers to every table except the DSDT and FACS (those hang off the FADT). */
export function buildXsdt(tables: readonly number[]): Uint8Array {
  const t = new TableBuilder(SDT_HEADER_SIZE + 8 * tables.length);
  tables.forEach((a, i) => t.u64(SDT_HEADER_SIZE + 8 * i, a));
  return finishSdt(t, 'XSDT', 1);
}

/** RSDT: the same list with 32-bit pointers, for ACPI 1.0 readers. */
export function buildRsdt(tables: readonly number[]): Uint8Array {
  const t = new TableBuilder(SDT_HEADER_SIZE + 4 * tables.length);
  tables.forEach((a, i) => t.u32(SDT_HEADER_SIZE + 4 * i, a));
  return finishSdt(t, 'RSDT', 1);
}

/** DSDT: header + AML definition block. Revision 2 makes AML integers 64-bit. */
export function buildDsdt(amlBody: Uint8Array): Uint8Array {
  const t = new TableBuilder(SDT_HEADER_SIZE + amlBody.length);
  t.set(SDT_HEADER_SIZE, amlBody);
  return finishSdt(t, 'DSDT', 2);
}

/**
 * FACS (§5.2.10): required whenever the platform is not hardware-reduced. It has no checksum;
 * Linux reads the global lock and the waking vector (unused: we offer no S3) from it.
 */
export function buildFacs(): Uint8Array {
  const t = new TableBuilder(FACS_SIZE);
  t.ascii(0, 'FACS', 4).u32(4, FACS_SIZE).u32(8, 0 /* Hardware Signature */).u8(32, 2 /* Version */);
  return t.bytes;
}

// Generic Address Structure (§5.2.3.2) address space ids and access sizes.
export const GAS_SYSTEM_IO = 1;
export const GAS_ACCESS_BYTE = 1;
export const GAS_ACCESS_WORD = 2;
export const GAS_ACCESS_DWORD = 3;

function gas(t: TableBuilder, off: number, space: number, bitWidth: number, access: number, address: number): void {
  t.u8(off, space).u8(off + 1, bitWidth).u8(off + 2, 0).u8(off + 3, access).u64(off + 4, address);
}

/** FADT field offsets (Table 5.9), those tests and readers care about. */
export const FADT = {
  FIRMWARE_CTRL: 36, DSDT: 40, Preferred_PM_Profile: 45, SCI_INT: 46, SMI_CMD: 48,
  PM1a_EVT_BLK: 56, PM1a_CNT_BLK: 64, PM_TMR_BLK: 76, GPE0_BLK: 80,
  PM1_EVT_LEN: 88, PM1_CNT_LEN: 89, PM_TMR_LEN: 91, GPE0_BLK_LEN: 92,
  P_LVL2_LAT: 96, P_LVL3_LAT: 98, IAPC_BOOT_ARCH: 109, Flags: 112, RESET_REG: 116, RESET_VALUE: 128,
  FADT_Minor_Version: 131, X_FIRMWARE_CTRL: 132, X_DSDT: 140, X_PM1a_EVT_BLK: 148,
  X_PM1a_CNT_BLK: 172, X_PM_TMR_BLK: 208, X_GPE0_BLK: 220,
} as const;

// FADT Flags (Table 5.10).
export const FADT_WBINVD = 1 << 0;
export const FADT_PROC_C1 = 1 << 2;
export const FADT_SLP_BUTTON = 1 << 5; // 1: no fixed-feature sleep button
export const FADT_TMR_VAL_EXT = 1 << 8; // set: the PM timer is 32 bits (devices/acpi-pm.ts says why)
export const FADT_RESET_REG_SUP = 1 << 10;
export const FADT_HW_REDUCED_ACPI = 1 << 20; // left clear: we have the fixed PM block
// IA-PC Boot Architecture Flags (Table 5.11).
export const IAPC_LEGACY_DEVICES = 1 << 0;
export const IAPC_8042 = 1 << 1;

/**
 * FADT revision 6. SMI_CMD = 0 tells the OS the machine is already in ACPI mode (SCI_EN reads 1),
 * so no SMM hand-off exists. PWR_BUTTON is clear: the power button is the fixed-feature one in
 * PM1 (PWRBTN_STS/EN), which is how a host asks for an orderly shutdown.
 */
export function buildFadt(facsAddress: number, dsdtAddress: number): Uint8Array {
  const t = new TableBuilder(FADT_SIZE);
  const pm1EvtLen = PORT_ACPI_PM1A_CNT - PORT_ACPI_PM1A_EVT; // PM1_STS + PM1_EN, 2 bytes each
  t.u32(FADT.FIRMWARE_CTRL, facsAddress).u32(FADT.DSDT, dsdtAddress)
    .u8(FADT.Preferred_PM_Profile, 0 /* Unspecified */).u16(FADT.SCI_INT, IRQ_SCI).u32(FADT.SMI_CMD, 0)
    .u32(FADT.PM1a_EVT_BLK, PORT_ACPI_PM1A_EVT).u32(FADT.PM1a_CNT_BLK, PORT_ACPI_PM1A_CNT)
    .u32(FADT.PM_TMR_BLK, PORT_ACPI_PM_TMR).u32(FADT.GPE0_BLK, PORT_ACPI_GPE0)
    .u8(FADT.PM1_EVT_LEN, pm1EvtLen).u8(FADT.PM1_CNT_LEN, 2).u8(FADT.PM_TMR_LEN, 4)
    .u8(FADT.GPE0_BLK_LEN, PORT_ACPI_GPE0_LEN)
    // Latencies above 100 / 1000 us mean "C2 / C3 not supported".
    .u16(FADT.P_LVL2_LAT, 101).u16(FADT.P_LVL3_LAT, 1001)
    .u16(FADT.IAPC_BOOT_ARCH, IAPC_LEGACY_DEVICES | IAPC_8042)
    .u32(FADT.Flags, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP)
    .u8(FADT.RESET_VALUE, ACPI_RESET_VALUE)
    .u8(FADT.FADT_Minor_Version, 0)
    .u64(FADT.X_FIRMWARE_CTRL, facsAddress).u64(FADT.X_DSDT, dsdtAddress);
  gas(t, FADT.RESET_REG, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, PORT_ACPI_RESET);
  gas(t, FADT.X_PM1a_EVT_BLK, GAS_SYSTEM_IO, pm1EvtLen * 8, GAS_ACCESS_WORD, PORT_ACPI_PM1A_EVT);
  gas(t, FADT.X_PM1a_CNT_BLK, GAS_SYSTEM_IO, 16, GAS_ACCESS_WORD, PORT_ACPI_PM1A_CNT);
  gas(t, FADT.X_PM_TMR_BLK, GAS_SYSTEM_IO, 32, GAS_ACCESS_DWORD, PORT_ACPI_PM_TMR);
  gas(t, FADT.X_GPE0_BLK, GAS_SYSTEM_IO, PORT_ACPI_GPE0_LEN * 8, GAS_ACCESS_BYTE, PORT_ACPI_GPE0);
  return finishSdt(t, 'FACP', 6);
}

// MADT (§5.2.12) interrupt controller structure types and flags.
export const MADT_LOCAL_APIC = 0;
export const MADT_IO_APIC = 1;
export const MADT_INTERRUPT_SOURCE_OVERRIDE = 2;
export const MADT_LOCAL_APIC_NMI = 4;
export const MADT_PCAT_COMPAT = 1;
/** MPS INTI flags (Table 5.26): polarity bits 1:0, trigger mode bits 3:2. */
export const MPS_INTI_ACTIVE_HIGH = 0x1;
export const MPS_INTI_ACTIVE_LOW = 0x3;
export const MPS_INTI_EDGE = 0x1 << 2;
export const MPS_INTI_LEVEL = 0x3 << 2;

export interface MadtOptions {
  cpus: number;
  ioapicId: number;
  /** GSI the ISA timer (IRQ0) arrives on; an override entry is emitted when it is not 0. */
  irq0Gsi: number;
}

/**
 * MADT revision 5: one enabled Processor Local APIC per vCPU (UID = APIC id = index), the
 * IOAPIC at GSI base 0, overrides for IRQ0 (if moved) and the SCI (level, active high: our PM
 * block drives the line high while an event is pending), and LINT1 as NMI on every CPU.
 */
export function buildMadt(o: MadtOptions): Uint8Array {
  const overrides: Array<{ source: number; gsi: number; flags: number }> = [];
  if (o.irq0Gsi !== 0) overrides.push({ source: 0, gsi: o.irq0Gsi, flags: MPS_INTI_ACTIVE_HIGH | MPS_INTI_EDGE });
  overrides.push({ source: IRQ_SCI, gsi: IRQ_SCI, flags: MPS_INTI_ACTIVE_HIGH | MPS_INTI_LEVEL });
  const size = SDT_HEADER_SIZE + 8 + 8 * o.cpus + 12 + 10 * overrides.length + 6;
  const t = new TableBuilder(size);
  t.u32(36, LAPIC_START).u32(40, MADT_PCAT_COMPAT);
  let off = 44;
  for (let cpu = 0; cpu < o.cpus; cpu++) {
    t.u8(off, MADT_LOCAL_APIC).u8(off + 1, 8).u8(off + 2, cpu).u8(off + 3, cpu).u32(off + 4, 1 /* Enabled */);
    off += 8;
  }
  t.u8(off, MADT_IO_APIC).u8(off + 1, 12).u8(off + 2, o.ioapicId).u32(off + 4, IOAPIC_START).u32(off + 8, 0);
  off += 12;
  for (const ov of overrides) {
    t.u8(off, MADT_INTERRUPT_SOURCE_OVERRIDE).u8(off + 1, 10).u8(off + 2, 0 /* ISA */).u8(off + 3, ov.source)
      .u32(off + 4, ov.gsi).u16(off + 8, ov.flags);
    off += 10;
  }
  // ACPI Processor UID 0xFF means "all processors".
  t.u8(off, MADT_LOCAL_APIC_NMI).u8(off + 1, 6).u8(off + 2, 0xff)
    .u16(off + 3, MPS_INTI_ACTIVE_HIGH | MPS_INTI_EDGE).u8(off + 5, 1 /* LINT1 */);
  return finishSdt(t, 'APIC', 5);
}
