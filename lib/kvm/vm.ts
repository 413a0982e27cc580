// A VM: memory slots, the in-kernel irqchip/PIT, interrupt lines, eventfds, dirty logging and
// its vCPUs. Caller mistakes are caught here with ERR_* codes; what only KVM can judge
// (alignment, overlap, id limits) is left to KVM and surfaces as KvmError with its errno.
import { totalmem } from 'node:os';
import { InvalidArgumentError, KvmError } from '../errors.js';
import { native } from '../native.js';
import { FdHandle } from './handle.js';
import { GuestMemory, type RamRegion } from './memory.js';
import { Vcpu } from './vcpu.js';
import { CLOCK_FLAGS_OFFSET, IRQCHIP_IDS, type VmState } from './state.js';
import { parseSize, type Size } from '../size.js';
import { checkOptions, keysOf } from '../options-check.js';

/** Where and how large a RAM slot is. */
export interface MemoryRegionOptions {
  /** KVM memory slot number, unique per VM. */
  slot: number;
  /** Guest-physical address, page-aligned. */
  guestPhysAddr: number;
  /** Bytes ('64M' or a number): a positive multiple of 4 KiB, at most MAX_REGION_BYTES. */
  size: Size;
  /** Map it read-only for the guest (writes exit as MMIO), as for a ROM. */
  readonly?: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES, for getDirtyLog(). */
  logDirtyPages?: boolean;
  /**
   * Host memory to use instead of fresh anonymous RAM: a mapping from the native shim (e.g.
   * `mmapFilePrivate`, a copy-on-write snapshot). The Vm owns it from then on and unmaps it.
   */
  backing?: ArrayBuffer;
}

/** A RAM slot as created: its placement and a zero-copy view of its bytes. */
export interface MemoryRegion extends RamRegion {
  /** Whether KVM tracks writes to it (getDirtyLog). */
  readonly logDirtyPages: boolean;
}

/** One external ArrayBuffer is capped at 4 GiB on Node 20: bigger RAM is split into slots. */
export const MAX_REGION_BYTES = 4 * 1024 * 1024 * 1024;

function checkInt(name: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

/** A KVM virtual machine: memory slots, the in-kernel irqchip and PIT, interrupt lines, eventfds, and its vCPUs. */
export class Vm extends FdHandle {
  /** Bounds-checked access to every RAM region of this VM, by guest-physical address. */
  readonly memory = new GuestMemory();
  private readonly regions = new Map<number, { region: MemoryRegion; buffer: ArrayBuffer }>();
  private readonly vcpus = new Set<Vcpu>();

  /** @internal created by Kvm.createVm */
  constructor(fd: number, private readonly vcpuMmapSize: number) {
    super(fd, 'VM');
  }

  protected override releaseResources(): void {
    for (const v of [...this.vcpus]) v.close();
    // No vCPU runs any more, so the RAM can go now (KVM's MMU notifier drops its mappings).
    // munmap detaches each buffer first: any JS view left over becomes zero-length.
    for (const { buffer, region } of this.regions.values()) {
      this.memory.removeRegion(region.slot);
      native().munmap(buffer);
    }
    this.regions.clear();
  }

  /** Check a KVM capability on this VM (VM-level answers can differ from /dev/kvm's). */
  checkExtension(cap: number): number {
    this.ensureOpen();
    return native().checkExtension(this.rawFd, checkInt('cap', cap));
  }

  /** KVM_SET_USER_MEMORY_REGION over fresh host memory (private, 2 MiB-aligned, advised for transparent huge pages, not inherited by forked children). Overlaps and slots in use are refused. */
  createMemoryRegion(opts: MemoryRegionOptions): MemoryRegion {
    this.ensureOpen();
    checkOptions('createMemoryRegion', opts, keysOf<MemoryRegionOptions>({ slot: true, guestPhysAddr: true, size: true, readonly: true, logDirtyPages: true, backing: true }));
    const slot = checkInt('slot', opts.slot);
    const gpa = checkInt('guestPhysAddr', opts.guestPhysAddr);
    const size = parseSize(opts.size, 'size');
    if (size > MAX_REGION_BYTES) {
      throw new InvalidArgumentError(`a memory region is at most 4 GiB (got ${size} bytes): split RAM into several slots`,
        'ERR_REGION_TOO_LARGE');
    }
    if (size > totalmem()) {
      throw new InvalidArgumentError(`guest RAM of ${size} bytes is more than this host has (${totalmem()} bytes)`,
        'ERR_MEMORY_TOO_LARGE');
    }
    if (this.regions.has(slot)) {
      throw new KvmError('EEXIST', 17, 'KVM_SET_USER_MEMORY_REGION', `memory slot ${slot} is already in use`);
    }
    const n = native();
    const c = n.constants;
    const flags = (opts.readonly ? c.KVM_MEM_READONLY! : 0) | (opts.logDirtyPages ? c.KVM_MEM_LOG_DIRTY_PAGES! : 0);
    if (opts.backing !== undefined && opts.backing.byteLength < size) {
      throw new InvalidArgumentError(`backing memory of ${opts.backing.byteLength} bytes is smaller than the region (${size})`);
    }
    const buffer = opts.backing ?? n.mmapAnonymous(size);
    try {
      n.setUserMemoryRegion(this.rawFd, slot, flags, gpa, size, buffer);
    } catch (e) {
      n.munmap(buffer);
      throw e;
    }
    const region: MemoryRegion = {
      slot, guestPhysAddr: gpa, size, readonly: opts.readonly ?? false,
      logDirtyPages: opts.logDirtyPages ?? false, bytes: new Uint8Array(buffer),
    };
    this.regions.set(slot, { region, buffer });
    this.memory.addRegion(region);
    return region;
  }

  /** Remove a slot from the guest and unmap its memory. */
  deleteMemoryRegion(slot: number): void {
    this.ensureOpen();
    const r = this.regions.get(slot);
    if (r === undefined) throw new InvalidArgumentError(`memory slot ${slot} does not exist`, 'ERR_NO_SUCH_SLOT');
    native().setUserMemoryRegion(this.rawFd, slot, 0, r.region.guestPhysAddr, 0, null);
    this.regions.delete(slot);
    this.memory.removeRegion(slot);
    native().munmap(r.buffer);
  }

  /**
   * Back slot `slot` with a copy-on-write mapping of `fd` at `offset` (MAP_PRIVATE: writes go to
   * private pages, never to the file), in place: the slot, its host address and `region.bytes`
   * stay as they are, only the pages behind them change. Cheaper than deleting and re-creating
   * the slot, and no JS view is detached.
   */
  mapFilePrivateOver(slot: number, fd: number, offset: number): void {
    this.ensureOpen();
    const r = this.regions.get(slot);
    if (r === undefined) throw new InvalidArgumentError(`memory slot ${slot} does not exist`, 'ERR_NO_SUCH_SLOT');
    native().remapFilePrivate(r.buffer, fd, checkInt('offset', offset));
  }

  /**
   * KVM_REGISTER_COALESCED_MMIO (with `pio` for port I/O, KVM_CAP_COALESCED_PIO): guest writes
   * to [addr, addr+size) are queued in a ring instead of exiting; the exit handler applies
   * them (KvmRun.drainCoalesced) before the next exit. For write-only registers whose effect
   * is only observed through a later access, such as the PCI CONFIG_ADDRESS port.
   */
  registerCoalesced(opts: { addr: number; size: number; pio: boolean }): void {
    this.ensureOpen();
    native().registerCoalescedMmio(this.rawFd, checkInt('addr', opts.addr), checkInt('size', opts.size, 1), opts.pio ? 1 : 0);
  }

  /**
   * KVM_UNREGISTER_COALESCED_MMIO: writes to a zone registered with these same values exit
   * again. Apply what the ring holds first (KvmRun.drainCoalesced): queued writes stay queued.
   */
  unregisterCoalesced(opts: { addr: number; size: number; pio: boolean }): void {
    this.ensureOpen();
    native().unregisterCoalescedMmio(this.rawFd, checkInt('addr', opts.addr), checkInt('size', opts.size, 1), opts.pio ? 1 : 0);
  }

  /**
   * The in-kernel devices' state: both PICs and the IOAPIC (KVM_GET_IRQCHIP), the PIT
   * (KVM_GET_PIT2) and kvmclock (KVM_GET_CLOCK). Needs createIrqchip() and createPit2().
   */
  saveState(): VmState {
    this.ensureOpen();
    const n = native();
    return {
      irqchip: IRQCHIP_IDS.map((id) => n.getIrqchip(this.rawFd, id)),
      pit: n.getPit2(this.rawFd),
      clock: n.getClock(this.rawFd),
    };
  }

  /** Put back what saveState() returned; kvmclock resumes at the saved value. */
  loadState(s: VmState): void {
    this.ensureOpen();
    const n = native();
    for (const chip of s.irqchip) n.setIrqchip(this.rawFd, chip);
    n.setPit2(this.rawFd, s.pit);
    const clock = s.clock.slice();
    new DataView(clock.buffer, clock.byteOffset, clock.byteLength).setUint32(CLOCK_FLAGS_OFFSET, 0, true);
    n.setClock(this.rawFd, clock);
  }

  /** KVM_CREATE_IRQCHIP: the in-kernel PIC, IOAPIC and a LAPIC per vCPU (before any vCPU is created). */
  createIrqchip(): void {
    this.ensureOpen();
    native().createIrqchip(this.rawFd);
  }

  /** KVM_CREATE_PIT2: the in-kernel i8254 timer on IRQ 0. */
  createPit2(flags = 0): void {
    this.ensureOpen();
    native().createPit2(this.rawFd, flags);
  }

  /** KVM_IRQ_LINE: drive interrupt line `irq` of the in-kernel irqchip high or low. */
  irqLine(irq: number, level: boolean | number): void {
    this.ensureOpen();
    native().irqLine(this.rawFd, irq, level ? 1 : 0);
  }

  /** KVM_SET_TSS_ADDR: three pages of guest-physical space Intel VMX needs for real mode (not RAM). */
  setTssAddr(addr: number): void {
    this.ensureOpen();
    native().setTssAddr(this.rawFd, checkInt('addr', addr));
  }

  /** KVM_SET_IDENTITY_MAP_ADDR: one page VMX uses for an identity map in unpaged protected mode. */
  setIdentityMapAddr(addr: number): void {
    this.ensureOpen();
    native().setIdentityMapAddr(this.rawFd, checkInt('addr', addr));
  }

  /** KVM_IOEVENTFD: a guest write to `addr` signals `eventfd` without an exit. */
  ioeventfd(opts: { addr: number; len: number; eventfd: number; pio?: boolean; datamatch?: bigint; deassign?: boolean }): void {
    this.ensureOpen();
    const c = native().constants;
    const flags = (opts.pio ? c.KVM_IOEVENTFD_FLAG_PIO! : 0) | (opts.datamatch !== undefined ? c.KVM_IOEVENTFD_FLAG_DATAMATCH! : 0)
      | (opts.deassign ? c.KVM_IOEVENTFD_FLAG_DEASSIGN! : 0);
    native().ioeventfd(this.rawFd, opts.addr, opts.len, opts.eventfd, opts.datamatch ?? 0n, flags);
  }

  /** KVM_IRQFD: signalling `eventfd` raises GSI `gsi`. */
  irqfd(opts: { eventfd: number; gsi: number; resamplefd?: number; deassign?: boolean }): void {
    this.ensureOpen();
    const c = native().constants;
    const flags = (opts.deassign ? c.KVM_IRQFD_FLAG_DEASSIGN! : 0) | (opts.resamplefd !== undefined ? c.KVM_IRQFD_FLAG_RESAMPLE! : 0);
    native().irqfd(this.rawFd, opts.eventfd, opts.gsi, flags, opts.resamplefd ?? 0);
  }

  /**
   * KVM_SIGNAL_MSI: deliver one message-signalled interrupt (address/data as a PCI function
   * would write them). Returns true when delivered, false when the guest blocked it.
   */
  signalMsi(address: bigint, data: number): boolean {
    this.ensureOpen();
    return native().signalMsi(this.rawFd, address, data >>> 0) > 0;
  }

  /** Dirty-page bitmap of a slot created with logDirtyPages (bit n = page n written; cleared by the read). */
  getDirtyLog(slot: number): Uint8Array {
    this.ensureOpen();
    const r = this.regions.get(slot);
    if (r === undefined) throw new InvalidArgumentError(`memory slot ${slot} does not exist`, 'ERR_NO_SUCH_SLOT');
    const pages = Math.ceil(r.region.size / 4096);
    const bitmap = new Uint8Array(Math.ceil(pages / 64) * 8);
    native().getDirtyLog(this.rawFd, slot, bitmap);
    return bitmap;
  }

  /** Binary statistics fd (KVM_GET_STATS_FD); the caller closes it. See readKvmStats(). */
  getStatsFd(): number {
    this.ensureOpen();
    return native().getStatsFd(this.rawFd);
  }

  /** KVM_CREATE_VCPU with APIC id `id`; closed with the VM at the latest. */
  createVcpu(id: number): Vcpu {
    this.ensureOpen();
    checkInt('vCPU id', id);
    const fd = native().createVcpu(this.rawFd, id);
    const v = new Vcpu(fd, id, this.vcpuMmapSize, (x) => this.vcpus.delete(x));
    this.vcpus.add(v);
    return v;
  }

  /** The vCPUs created so far, in creation order. */
  get vcpuList(): readonly Vcpu[] {
    return [...this.vcpus];
  }
}
