// The PCI function base class: identity registers, command/status, BARs with sizing and
// decode enable, and INTx. Subclasses (the RTL8139) define their BARs and call setIrqLevel().
//
// A BAR is decoded only while its command-register enable bit (I/O space / memory space) is on
// and it holds an address, as on a real PC; every change of either goes through the BarMapper
// the host bridge hands us, which (un)registers the BAR's BusDevice on the PIO or MMIO bus.
import type { BusDevice, CoalescedZone, IrqLine } from '../../bus/device.js';
import { InvalidArgumentError } from '../../errors.js';
import {
  PciConfigSpace, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE, PCI_CLASS_PROG, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO,
  PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_COMMAND_PARITY, PCI_COMMAND_SERR, PCI_DEVICE_ID,
  PCI_HEADER_TYPE, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN, PCI_LATENCY_TIMER, PCI_REVISION_ID,
  PCI_STATUS, PCI_STATUS_INTERRUPT, PCI_STATUS_W1C, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './config-space.js';
import type { Stateful } from '../stateful.js';

export type BarKind = 'io' | 'mmio';

/** What a PCI device needs from the machine to make its BARs visible (implemented over the buses). */
export interface BarMapper {
  /** Register `device` at [base, base+length) on the I/O or memory bus, as `name`. May throw on overlap. */
  map(kind: BarKind, base: number, length: number, device: BusDevice, name: string): void;
  /** Remove `device` from that bus. */
  unmap(kind: BarKind, device: BusDevice): void;
  /**
   * Optional: let guest writes to [addr, addr+size) be queued instead of exiting one by one
   * (KVM's coalesced MMIO/PIO), or stop that (`on` false, same addr and size). Called for each
   * zone a BAR declares (PciBarDefinition.coalescedWrites) when it is mapped and unmapped.
   */
  coalesce?(kind: BarKind, addr: number, size: number, on: boolean): void;
}

export type { CoalescedZone } from '../../bus/device.js';

export interface PciBarDefinition {
  kind: BarKind;
  /** Size in bytes: a power of two, at least 4 (I/O) or 16 (memory). */
  size: number;
  /** The register window the BAR decodes to. One object per BAR. */
  device: BusDevice;
  prefetchable?: boolean;
  /**
   * Registers whose writes may reach the device late: the hypervisor queues them and the
   * machine applies them, in order, before it handles the next exit of any kind. Only for
   * writes whose effect the guest cannot miss until its next access to the device (a read
   * exits and sees them applied); an interrupt line they lower stays up until then.
   */
  coalescedWrites?: readonly CoalescedZone[];
  /**
   * Told where the BAR now decodes (undefined: it stopped), after the mapper registered it: for
   * devices that attach more to that address (KVM_IOEVENTFD doorbells).
   */
  onMapped?(base: number | undefined): void;
}

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  /** 24-bit class code: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  headerType?: number;
  /** 0 = no interrupt, 1..4 = INTA#..INTD#. */
  interruptPin?: number;
}

interface Bar extends PciBarDefinition {
  index: number;
  /** Base currently registered on a bus, or undefined. */
  mappedAt: number | undefined;
}

/** PciDevice.saveState(): the 256 config bytes (BARs included) and the INTx condition. */
export interface PciDeviceState {
  config: number[];
  intxLevel: boolean;
}

export class PciDevice implements Stateful<PciDeviceState> {
  readonly config = new PciConfigSpace();
  private readonly bars: Array<Bar | undefined> = new Array<Bar | undefined>(6).fill(undefined);
  private mapper: BarMapper | undefined;
  private irq: IrqLine | undefined;
  private intxLevel = false;
  private lineAsserted = false;
  /** BAR (un)mappings the mapper refused (e.g. overlap); the guest sees the BAR as not decoded. */
  mapFailures = 0;

  constructor(identity: PciIdentity) {
    const c = this.config;
    c.set16(PCI_VENDOR_ID, identity.vendorId);
    c.set16(PCI_DEVICE_ID, identity.deviceId);
    c.set8(PCI_REVISION_ID, identity.revision ?? 0);
    c.set8(PCI_CLASS_PROG, identity.classCode & 0xff);
    c.set16(PCI_CLASS_PROG + 1, (identity.classCode >>> 8) & 0xffff);
    c.set8(PCI_HEADER_TYPE, identity.headerType ?? 0);
    c.set16(PCI_SUBSYSTEM_VENDOR_ID, identity.subsystemVendorId ?? 0);
    c.set16(PCI_SUBSYSTEM_ID, identity.subsystemId ?? 0);
    c.set8(PCI_INTERRUPT_PIN, identity.interruptPin ?? 0);
    c.setWritable(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
      PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    c.setWriteOneToClear(PCI_STATUS, 2, PCI_STATUS_W1C);
    c.setWritable(PCI_CACHE_LINE_SIZE, 1, 0xff);
    c.setWritable(PCI_LATENCY_TIMER, 1, 0xff);
    c.setWritable(PCI_INTERRUPT_LINE, 1, 0xff);
  }

  get vendorId(): number { return this.config.get16(PCI_VENDOR_ID); }
  get deviceId(): number { return this.config.get16(PCI_DEVICE_ID); }
  get revision(): number { return this.config.get8(PCI_REVISION_ID); }
  get interruptPin(): number { return this.config.get8(PCI_INTERRUPT_PIN); }
  get command(): number { return this.config.get16(PCI_COMMAND); }
  /** Bus mastering enabled: devices should not DMA without it (we let them, but expose it). */
  get busMaster(): boolean { return (this.command & PCI_COMMAND_MASTER) !== 0; }

  /** Declare BAR `index` (0..5). Called by subclasses in their constructor. */
  protected defineBar(index: number, def: PciBarDefinition): void {
    if (!Number.isInteger(index) || index < 0 || index > 5) throw new InvalidArgumentError(`BAR index ${index} out of range`);
    const min = def.kind === 'io' ? 4 : 16;
    if (!Number.isInteger(def.size) || def.size < min || (def.size & (def.size - 1)) !== 0 || def.size > 0x8000_0000) {
      throw new InvalidArgumentError(`BAR ${index} size ${def.size} is not a power of two >= ${min}`);
    }
    for (const z of def.coalescedWrites ?? []) {
      if (!Number.isInteger(z.offset) || !Number.isInteger(z.size) || z.offset < 0 || z.size < 1 || z.offset + z.size > def.size) {
        throw new InvalidArgumentError(`BAR ${index}: coalesced zone ${JSON.stringify(z)} is not inside its ${def.size} bytes`);
      }
    }
    const o = PCI_BASE_ADDRESS_0 + 4 * index;
    const flags = def.kind === 'io' ? PCI_BASE_ADDRESS_SPACE_IO : def.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
    this.config.set32(o, flags);
    // Address bits below the size are hard-wired to zero: that is what BAR sizing reads back.
    this.config.setWritable(o, 4, (~(def.size - 1) & (def.kind === 'io' ? 0xffff_fffc : 0xffff_fff0)) >>> 0);
    this.bars[index] = { ...def, index, mappedAt: undefined };
  }

  /** Called by the host bridge when the device is plugged in. */
  attach(mapper: BarMapper, irq: IrqLine | undefined): void {
    this.mapper = mapper;
    this.irq = irq;
    this.syncBars();
    this.syncIntx();
  }

  /** Address programmed in BAR `index` (without flag bits), or undefined if no such BAR. */
  barAddress(index: number): number | undefined {
    const bar = this.bars[index];
    if (bar === undefined) return undefined;
    const raw = this.config.get32(PCI_BASE_ADDRESS_0 + 4 * index);
    return (raw & (bar.kind === 'io' ? 0xffff_fffc : 0xffff_fff0)) >>> 0;
  }

  /** Where BAR `index` is decoded right now, or undefined. */
  barMappedAt(index: number): number | undefined {
    return this.bars[index]?.mappedAt;
  }

  barDefinition(index: number): Readonly<PciBarDefinition> | undefined {
    return this.bars[index];
  }

  /** Program BAR `index` (firmware-style resource assignment) without going through the masks. */
  setBarAddress(index: number, address: number): void {
    const bar = this.bars[index];
    if (bar === undefined) throw new InvalidArgumentError(`device has no BAR ${index}`);
    const o = PCI_BASE_ADDRESS_0 + 4 * index;
    const keep = this.config.get32(o) & (bar.kind === 'io' ? 0x3 : 0xf);
    this.config.set32(o, ((address & ~(bar.size - 1)) | keep) >>> 0);
    this.syncBars();
  }

  /** Set command-register bits directly (firmware enabling decode after assignment). */
  enableCommand(bits: number): void {
    this.config.set16(PCI_COMMAND, this.command | bits);
    this.syncBars();
    this.syncIntx();
  }

  /** Config-space read by the guest (offset 0..255, size 1/2/4). */
  readConfig(offset: number, size: number): number {
    return this.config.read(offset, size);
  }

  /** Config-space write by the guest; re-evaluates BAR decoding and INTx afterwards. */
  writeConfig(offset: number, size: number, value: number): void {
    this.config.write(offset, size, value);
    if (offset < PCI_BASE_ADDRESS_0 + 24 && offset + size > PCI_COMMAND) {
      this.syncBars();
      this.syncIntx();
    }
  }

  /** The device's interrupt condition (INTx level before the INTx-disable gate). */
  protected setIrqLevel(level: boolean): void {
    if (level === this.intxLevel) return;
    this.intxLevel = level;
    this.syncIntx();
  }

  /** Whether the device is asserting its INTx pin right now (after INTx-disable). */
  get intxAsserted(): boolean {
    return this.lineAsserted;
  }

  /** Config space and the INTx condition; loadState re-decodes the BARs at their saved addresses. */
  saveState(): PciDeviceState {
    return { config: Array.from(this.config.bytes), intxLevel: this.intxLevel };
  }

  loadState(s: PciDeviceState): void {
    this.config.bytes.set(s.config.slice(0, 256));
    this.intxLevel = s.intxLevel;
    this.syncBars();
    this.syncIntx();
  }

  private syncIntx(): void {
    const st = this.config.get16(PCI_STATUS);
    this.config.set16(PCI_STATUS, this.intxLevel ? st | PCI_STATUS_INTERRUPT : st & ~PCI_STATUS_INTERRUPT);
    const assert = this.intxLevel && (this.command & PCI_COMMAND_INTX_DISABLE) === 0 && this.interruptPin !== 0;
    if (assert === this.lineAsserted) return;
    this.lineAsserted = assert;
    if (assert) this.irq?.raise();
    else this.irq?.lower();
  }

  /** Tell the mapper about the BAR's coalesced zones at `base` (best effort: a zone is an optimisation). */
  private coalesceZones(bar: Bar, base: number, on: boolean): void {
    const coalesce = this.mapper?.coalesce;
    if (coalesce === undefined || bar.coalescedWrites === undefined) return;
    for (const z of bar.coalescedWrites) {
      try {
        coalesce.call(this.mapper, bar.kind, base + z.offset, z.size, on);
      } catch {
        this.mapFailures++;
      }
    }
  }

  private syncBars(): void {
    const cmd = this.command;
    for (const bar of this.bars) {
      if (bar === undefined) continue;
      const enabled = (cmd & (bar.kind === 'io' ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) !== 0;
      const addr = this.barAddress(bar.index)!;
      const limit = bar.kind === 'io' ? 0x10000 : 0x1_0000_0000;
      // Address 0 means "unassigned"; a BAR still holding the all-ones sizing pattern ends at the
      // top of its address space (where nothing decodable lives), so it is not mapped either.
      const want = enabled && addr !== 0 && addr + bar.size < limit ? addr : undefined;
      if (want === bar.mappedAt) continue;
      if (this.mapper === undefined) continue;
      if (bar.mappedAt !== undefined) {
        this.coalesceZones(bar, bar.mappedAt, false);
        try {
          this.mapper.unmap(bar.kind, bar.device);
        } catch {
          this.mapFailures++;
        }
        bar.mappedAt = undefined;
      }
      if (want !== undefined) {
        try {
          this.mapper.map(bar.kind, want, bar.size, bar.device, `${this.constructor.name} BAR${bar.index}`);
          bar.mappedAt = want;
        } catch {
          this.mapFailures++;
        }
        if (bar.mappedAt !== undefined) this.coalesceZones(bar, want, true);
      }
      bar.onMapped?.(bar.mappedAt);
    }
  }
}
