// Place the ACPI tables in guest memory between ACPI_START and ACPI_END. The RSDP sits first,
// at ACPI_START, which Linux finds by scanning 0xE0000-0xFFFFF on 16-byte boundaries (and the
// boot loader may also hand it over in boot_params.acpi_rsdp_addr). The machine must mark
// [ACPI_START, ACPI_END) reserved in the e820 map so the guest keeps the tables.
import type { GuestMemory } from '../../kvm/memory.js';
import { InvalidArgumentError, NodeKvmError } from '../../errors.js';
import { ACPI_END, ACPI_START } from '../../platform/layout.js';
import { buildDsdtAml, type PciIrqRoute } from './dsdt.js';
import { buildDsdt, buildFacs, buildFadt, buildMadt, buildRsdp, buildRsdt, buildXsdt } from './tables.js';

export { acpiChecksum } from './tables.js';
export { buildDsdtAml, SLP_TYP_S5 } from './dsdt.js';
export type { PciIrqRoute, DsdtOptions } from './dsdt.js';

/**
 * Most vCPUs the MADT can describe: Processor Local APIC entries carry 8-bit APIC ids, the
 * IOAPIC takes id `cpus`, and 0xFF is the xAPIC broadcast id.
 */
export const ACPI_MAX_CPUS = 254;

export interface AcpiTablesOptions {
  cpus: number;
  /** PCI INTx routes (pin 1 = INTA#) that differ from `pciIntxGsi(slot, pin)`; the _PRT lists all 32 slots. */
  pciIrqs?: readonly PciIrqRoute[];
  /** Occupied PCI slots on bus 0, described as `Device(Sxx)` children of \_SB.PCI0. */
  pciDevices?: readonly number[];
  /**
   * GSI the PIT's IRQ0 reaches. KVM's default GSI routing (no KVM_SET_GSI_ROUTING) wires GSI 0
   * to IOAPIC pin 0, so 0 is the default; pass 2 only if the machine routes GSI 0 to pin 2 as
   * QEMU does, and an IRQ0->GSI2 Interrupt Source Override is then emitted.
   */
  irq0Gsi?: 0 | 2;
}

export interface AcpiTableInfo {
  signature: string;
  address: number;
  length: number;
}

export interface AcpiTablesInfo {
  rsdpAddress: number;
  tables: AcpiTableInfo[];
  /** First byte after the last table. */
  end: number;
}

export class AcpiTablesTooLargeError extends NodeKvmError {
  constructor(end: number) {
    super('ERR_ACPI_TOO_LARGE', `ACPI tables end at 0x${end.toString(16)}, beyond ACPI_END 0x${ACPI_END.toString(16)}`);
  }
}

function align(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

/** Build every table and write it to guest memory. Returns where each one went. */
export function writeAcpiTables(memory: GuestMemory, o: AcpiTablesOptions): AcpiTablesInfo {
  if (!Number.isInteger(o.cpus) || o.cpus < 1) {
    throw new InvalidArgumentError(`cpus must be a positive integer, got ${o.cpus}`);
  }
  if (o.cpus > ACPI_MAX_CPUS) {
    throw new InvalidArgumentError(`the MADT describes at most ${ACPI_MAX_CPUS} vCPUs, got ${o.cpus}`, 'ERR_TOO_MANY_CPUS');
  }
  const irq0Gsi = o.irq0Gsi ?? 0;
  if (irq0Gsi !== 0 && irq0Gsi !== 2) {
    throw new InvalidArgumentError(`irq0Gsi must be 0 or 2, got ${String(irq0Gsi)}`);
  }

  // Layout: RSDP, then FACS (needs 64-byte alignment), then the SDTs on 16-byte boundaries.
  // Addresses are decided before the bytes because tables point at each other.
  const dsdt = buildDsdt(buildDsdtAml({ pciIrqs: o.pciIrqs, pciDevices: o.pciDevices }));
  const madt = buildMadt({ cpus: o.cpus, ioapicId: o.cpus, irq0Gsi });
  const facs = buildFacs();
  let cursor = ACPI_START;
  const rsdpAddr = cursor;
  cursor = align(cursor + 36, 64);
  const facsAddr = cursor;
  cursor = align(cursor + facs.length, 16);
  const dsdtAddr = cursor;
  cursor = align(cursor + dsdt.length, 16);
  const fadt = buildFadt(facsAddr, dsdtAddr);
  const fadtAddr = cursor;
  cursor = align(cursor + fadt.length, 16);
  const madtAddr = cursor;
  cursor = align(cursor + madt.length, 16);
  const pointed = [fadtAddr, madtAddr];
  const xsdt = buildXsdt(pointed);
  const xsdtAddr = cursor;
  cursor = align(cursor + xsdt.length, 16);
  const rsdt = buildRsdt(pointed);
  const rsdtAddr = cursor;
  const end = rsdtAddr + rsdt.length;
  if (end > ACPI_END) throw new AcpiTablesTooLargeError(end);
  const rsdp = buildRsdp(rsdtAddr, xsdtAddr);

  const placed: Array<[string, number, Uint8Array]> = [
    ['RSD PTR ', rsdpAddr, rsdp], ['FACS', facsAddr, facs], ['DSDT', dsdtAddr, dsdt],
    ['FACP', fadtAddr, fadt], ['APIC', madtAddr, madt], ['XSDT', xsdtAddr, xsdt], ['RSDT', rsdtAddr, rsdt],
  ];
  memory.fill(ACPI_START, end - ACPI_START, 0);
  for (const [, addr, bytes] of placed) memory.write(addr, bytes);
  return {
    rsdpAddress: rsdpAddr,
    tables: placed.map(([signature, address, bytes]) => ({ signature, address, length: bytes.length })),
    end,
  };
}
