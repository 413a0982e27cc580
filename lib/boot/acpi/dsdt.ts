// The DSDT's AML: what Linux needs from the namespace and nothing more.
//   \_S5_      Package {5, 5, 0, 0}: poweroff writes SLP_TYPa=5 | SLP_EN to PM1a_CNT.
//   \_SB.PCI0  the PCI root bridge (PNP0A03, bus 0) with its address windows in _CRS and an
//              interrupt routing table (_PRT) in GSI form, so no interrupt link devices exist.
// Only S5 is advertised: offering S3/S4 would invite a suspend that this VMM cannot resume.
import {
  PCI_IO_END, PCI_MMIO_END, PCI_MMIO_START, PORT_PCI_CONFIG_ADDRESS, pciIntxGsi,
} from '../../platform/layout.js';
import { InvalidArgumentError } from '../../errors.js';
import {
  type Aml, aml, amlDevice, amlInteger, amlName, amlPackage, amlScope, dwordMemory, eisaId,
  ioPort, resourceTemplate, wordBusNumber, wordIo,
} from './aml.js';

/** SLP_TYP value our PM1a_CNT decodes as S5 (soft off). */
export const SLP_TYP_S5 = 5;
export const PCI_SLOTS = 32;
export const PCI_PINS = 4;

/** One PCI INTx route: `pin` is 1-based (1 = INTA#) as in PCI config space Interrupt Pin. */
export interface PciIrqRoute {
  slot: number;
  pin: number;
  gsi: number;
}

export interface DsdtOptions {
  /** Routes that differ from the default `pciIntxGsi(slot, pin)`; the rest keep the default. */
  pciIrqs?: readonly PciIrqRoute[];
  /** Slots with a device: each gets a `Device(Sxx) { _ADR }` node so Linux binds its ACPI companion. */
  pciDevices?: readonly number[];
}

export function validatePciIrq(r: PciIrqRoute): void {
  const ok = Number.isInteger(r.slot) && r.slot >= 0 && r.slot < PCI_SLOTS
    && Number.isInteger(r.pin) && r.pin >= 1 && r.pin <= PCI_PINS
    && Number.isInteger(r.gsi) && r.gsi >= 0 && r.gsi <= 0xff;
  if (!ok) {
    throw new InvalidArgumentError(
      `PCI IRQ route {slot: ${r.slot}, pin: ${r.pin}, gsi: ${r.gsi}} needs slot 0..31, pin 1..4, gsi 0..255`,
      'ERR_INVALID_PCI_IRQ');
  }
}

/** The _PRT package: 32 slots x 4 pins, {Address (slot<<16 | 0xFFFF), Pin (0=INTA), 0, GSI}. */
export function buildPrt(overrides: readonly PciIrqRoute[] = []): Aml {
  const gsiFor = new Map<number, number>();
  for (const r of overrides) {
    validatePciIrq(r);
    gsiFor.set(r.slot * PCI_PINS + (r.pin - 1), r.gsi);
  }
  const entries: Aml[] = [];
  for (let slot = 0; slot < PCI_SLOTS; slot++) {
    for (let pin = 1; pin <= PCI_PINS; pin++) {
      const gsi = gsiFor.get(slot * PCI_PINS + (pin - 1)) ?? pciIntxGsi(slot, pin);
      // Source = Zero selects the GSI form: SourceIndex is the GSI itself.
      entries.push(amlPackage([amlInteger(slot * 0x10000 + 0xffff), amlInteger(pin - 1), amlInteger(0), amlInteger(gsi)]));
    }
  }
  return amlName('_PRT', amlPackage(entries));
}

/**
 * _CRS of the root bridge: bus 0-255, the config ports it consumes, the I/O it forwards (all
 * but 0xCF8-0xCFF), the legacy VGA hole and the 32-bit PCI MMIO window from layout.ts.
 */
export function buildPciCrs(): Aml {
  const cfg = PORT_PCI_CONFIG_ADDRESS;
  return amlName('_CRS', resourceTemplate(
    wordBusNumber(0x00, 0xff),
    ioPort(cfg, cfg, 0x01, 0x08),
    wordIo(0x0000, cfg - 1),
    wordIo(cfg + 8, PCI_IO_END - 1),
    dwordMemory(0x000a_0000, 0x000b_ffff, true),
    dwordMemory(PCI_MMIO_START, PCI_MMIO_END - 1, false),
  ));
}

function slotDevice(slot: number): Aml {
  if (!Number.isInteger(slot) || slot < 0 || slot >= PCI_SLOTS) {
    throw new InvalidArgumentError(`PCI slot ${slot} is outside 0..31`, 'ERR_INVALID_PCI_SLOT');
  }
  const name = `S${slot.toString(16).toUpperCase().padStart(2, '0')}`;
  return amlDevice(name, amlName('_ADR', amlInteger(slot * 0x10000)));
}

/** The DSDT definition block body (the AML after the table header). */
export function buildDsdtAml(o: DsdtOptions = {}): Aml {
  const slots = [...new Set(o.pciDevices ?? [])].sort((a, b) => a - b);
  const s5 = amlName('\\_S5_', amlPackage([amlInteger(SLP_TYP_S5), amlInteger(SLP_TYP_S5), amlInteger(0), amlInteger(0)]));
  const pci0 = amlDevice('PCI0',
    amlName('_HID', amlInteger(eisaId('PNP0A03'))),
    amlName('_ADR', amlInteger(0)),
    amlName('_UID', amlInteger(0)),
    amlName('_BBN', amlInteger(0)),
    buildPciCrs(),
    buildPrt(o.pciIrqs),
    ...slots.map(slotDevice),
  );
  return aml(s5, amlScope('\\_SB', pci0));
}
