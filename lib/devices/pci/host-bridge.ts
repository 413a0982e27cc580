// The PCI host bridge: configuration mechanism #1 (ports 0xCF8-0xCFF) for bus 0, the bridge's
// own function at 00:00.0, and firmware-style resource assignment.
//
// Linux with ACPI keeps the BARs "firmware" left programmed, so assignResources() must run
// before the guest boots: it places every BAR in the PCI I/O and MMIO windows of platform/layout
// and turns decoding on.
import type { BusDevice, IrqLine } from '../../bus/device.js';
import { WiredOrIrqLine } from '../../bus/irq.js';
import { InvalidArgumentError } from '../../errors.js';
import { PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_INTERRUPT_LINE } from './config-space.js';
import { PciDevice, type BarMapper } from './device.js';
import type { Stateful } from '../stateful.js';

/** CONFIG_ADDRESS fields. */
const CONFIG_ENABLE = 0x8000_0000;
const MAX_SLOTS = 32;
/** Reset Control Register at 0xCF9 (offset 1), byte access: SYS_RST | RST_CPU reboots. */
const RCR_OFFSET = 1;
const RCR_RST_CPU = 0x04;

/** An address window [start, end) BARs are placed in. */
export interface PciWindow {
  /** First address. */
  start: number;
  /** End (exclusive). */
  end: number;
}

export interface PciHostBridgeOptions {
  /** Maps BARs onto the PIO/MMIO buses. */
  mapper: BarMapper;
  /** Where I/O BARs go (the platform's PCI I/O window). */
  ioWindow: PciWindow;
  /** Where 32-bit memory BARs go (inside the platform's PCI hole). */
  mmioWindow: PciWindow;
  /** The GSI that slot `slot`'s interrupt pin `pin` (1 = INTA#) is routed to. */
  intxGsi: (slot: number, pin: number) => number;
  /** The IrqLine for an IOAPIC GSI; devices with an interrupt pin get intxGsi(slot, pin). */
  irqForGsi?: (gsi: number) => IrqLine;
  /** Called when the guest writes the reset control register (0xCF9) with RST_CPU set. */
  onReset?: (value: number) => void;
}

/** The bridge's own function 00:00.0 (Intel 440FX id, which Linux knows well). */
class HostBridgeFunction extends PciDevice {
  constructor() {
    super({ vendorId: 0x8086, deviceId: 0x1237, classCode: 0x060000, revision: 0x02 });
  }
}

/** PciHostBridge.saveState(). */
export interface PciHostBridgeState {
  address: number;
  rcr: number;
}

export class PciHostBridge implements BusDevice, Stateful<PciHostBridgeState> {
  /**
   * CONFIG_ADDRESS writes may be queued: they only matter to the CONFIG_DATA access that follows
   * (which exits and applies the queue first), so a config-space scan costs half the exits.
   */
  readonly coalescedWrites = [{ offset: 0, size: 4 }] as const;
  private readonly slots: Array<PciDevice | undefined> = new Array<PciDevice | undefined>(MAX_SLOTS).fill(undefined);
  private address = 0;
  private rcr = 0;
  private readonly opts: PciHostBridgeOptions;
  /** INTx lines by GSI: functions in slots 4 apart share one (pciIntxGsi), wired-OR. */
  private readonly intx = new Map<number, WiredOrIrqLine | undefined>();

  constructor(opts: PciHostBridgeOptions) {
    this.opts = opts;
    const self = new HostBridgeFunction();
    this.slots[0] = self;
    self.attach(opts.mapper, undefined);
  }

  /** Plug `dev` into `slot` (default: the first free slot from 1). Returns the slot. */
  addDevice(dev: PciDevice, slot?: number): number {
    let s = slot;
    if (s === undefined) {
      s = this.slots.findIndex((d, i) => i > 0 && d === undefined);
      if (s < 0) throw new InvalidArgumentError('no free PCI slot on bus 0', 'ERR_PCI_FULL');
    }
    if (!Number.isInteger(s) || s < 1 || s >= MAX_SLOTS) throw new InvalidArgumentError(`PCI slot ${s} out of range 1..31`);
    if (this.slots[s] !== undefined) throw new InvalidArgumentError(`PCI slot ${s} is taken`, 'ERR_PCI_SLOT_TAKEN');
    if (this.slots.includes(dev)) throw new InvalidArgumentError('device already plugged in');
    this.slots[s] = dev;
    const pin = dev.interruptPin;
    let irq: IrqLine | undefined;
    if (pin >= 1 && pin <= 4) {
      const gsi = this.opts.intxGsi(s, pin);
      dev.config.set8(PCI_INTERRUPT_LINE, gsi);
      if (!this.intx.has(gsi)) {
        const line = this.opts.irqForGsi?.(gsi);
        this.intx.set(gsi, line === undefined ? undefined : new WiredOrIrqLine(line));
      }
      irq = this.intx.get(gsi)?.source();
    }
    dev.attach(this.opts.mapper, irq);
    return s;
  }

  /** The device in `slot`, if any. */
  device(slot: number): PciDevice | undefined {
    return this.slots[slot];
  }

  /** [slot, device] for every plugged function, bridge included. */
  devices(): Array<[number, PciDevice]> {
    const out: Array<[number, PciDevice]> = [];
    this.slots.forEach((d, i) => { if (d !== undefined) out.push([i, d]); });
    return out;
  }

  /** GSI of the device in `slot` (from its interrupt pin), or undefined. */
  gsiOf(slot: number): number | undefined {
    const d = this.slots[slot];
    if (d === undefined || d.interruptPin < 1 || d.interruptPin > 4) return undefined;
    return this.opts.intxGsi(slot, d.interruptPin);
  }

  /**
   * Give every BAR an address inside the PCI windows (naturally aligned, largest first) and
   * enable I/O, memory decoding and bus mastering, as PC firmware does before the OS starts.
   */
  assignResources(): void {
    let io = this.opts.ioWindow.start;
    let mmio = this.opts.mmioWindow.start;
    for (const [, dev] of this.devices()) {
      const bars: Array<{ index: number; kind: 'io' | 'mmio'; size: number }> = [];
      for (let i = 0; i < 6; i++) {
        const b = dev.barDefinition(i);
        if (b !== undefined) bars.push({ index: i, kind: b.kind, size: b.size });
      }
      bars.sort((a, z) => z.size - a.size);
      let cmd = 0;
      for (const b of bars) {
        if (b.kind === 'io') {
          const base = alignUp(io, b.size);
          if (base + b.size > this.opts.ioWindow.end) throw new InvalidArgumentError('PCI I/O window exhausted', 'ERR_PCI_RESOURCES');
          dev.setBarAddress(b.index, base);
          io = base + b.size;
          cmd |= PCI_COMMAND_IO;
        } else {
          const base = alignUp(mmio, b.size);
          if (base + b.size > this.opts.mmioWindow.end) throw new InvalidArgumentError('PCI MMIO window exhausted', 'ERR_PCI_RESOURCES');
          dev.setBarAddress(b.index, base);
          mmio = base + b.size;
          cmd |= PCI_COMMAND_MEMORY;
        }
      }
      if (bars.length > 0) dev.enableCommand(cmd | PCI_COMMAND_MASTER);
    }
  }

  // --- BusDevice: registered at PORT_PCI_CONFIG_ADDRESS (0xCF8), length 8 ---

  read(offset: number, size: number): number {
    if (offset === 0 && size === 4) return this.address >>> 0;
    if (offset === RCR_OFFSET && size === 1) return this.rcr;
    if (offset >= 4 && offset + size <= 8) {
      const dev = this.selected();
      const mask = size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
      if (dev === undefined) return mask;
      return dev.readConfig((this.address & 0xfc) + (offset - 4), size) >>> 0;
    }
    // Other widths on 0xCF8-0xCFB are not CONFIG_ADDRESS on a PC (e.g. the 0xCFB probe byte).
    return size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
  }

  write(offset: number, size: number, value: number): void {
    if (offset === 0 && size === 4) {
      // Bits 1:0 are reserved and read back as zero.
      this.address = (value & 0x80ff_fffc) >>> 0;
      return;
    }
    if (offset === RCR_OFFSET && size === 1) {
      this.rcr = value & 0x0e;
      if ((value & RCR_RST_CPU) !== 0) this.opts.onReset?.(value & 0xff);
      return;
    }
    if (offset >= 4 && offset + size <= 8) {
      const dev = this.selected();
      if (dev !== undefined) dev.writeConfig((this.address & 0xfc) + (offset - 4), size, value);
    }
  }

  /** CONFIG_ADDRESS and the reset control register; each function saves its own config space. */
  saveState(): PciHostBridgeState {
    return { address: this.address, rcr: this.rcr };
  }

  loadState(s: PciHostBridgeState): void {
    this.address = s.address;
    this.rcr = s.rcr;
  }

  private selected(): PciDevice | undefined {
    const a = this.address;
    if ((a & CONFIG_ENABLE) === 0) return undefined;
    const bus = (a >>> 16) & 0xff;
    const slot = (a >>> 11) & 0x1f;
    const fn = (a >>> 8) & 0x7;
    if (bus !== 0 || fn !== 0) return undefined;
    return this.slots[slot];
  }
}

function alignUp(v: number, align: number): number {
  return Math.ceil(v / align) * align;
}
