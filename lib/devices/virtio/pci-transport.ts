// The virtio-over-PCI transport (virtio 1.2 §4.1), modern and non-transitional: PCI id
// 1af4:(1040 + device type), revision 1, the configuration structures in memory BAR 0, the
// MSI-X table and PBA in memory BAR 1, INTx with the ISR register as the fallback.
//
// BAR 0 layout (each structure on its own page, as the notify area must not share a page with
// registers that have to exit):
//   0x0000 common configuration   0x1000 ISR status   0x2000 device configuration
//   0x3000 notifications: queue n at 0x3000 + 4 n (queue_notify_off = n, multiplier 4)
// Notifications go to an injected doorbell (KVM_IOEVENTFD: the guest's write costs no exit)
// when there is one, and arrive as MMIO writes otherwise. Device work runs from the event loop,
// a bounded amount at a time (VirtioDevice.queueNotify returns true when more is left).
import type { DmaMemory } from '../../bus/device.js';
import { PciDevice, type PciDeviceState } from '../pci/device.js';
import { CapabilityWriter, VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_EXT_SIZE, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_LENGTH, VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_DATA, VIRTIO_PCI_NOTIFY_CAP_MULT } from './pci-capabilities.js';
import { CommonCfg, VIRTIO_PCI_COMMON_CFG_SIZE, type CommonCfgState } from './common-cfg.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import { featureRefusal, hasFeature, TRANSPORT_FEATURES, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from './features.js';
import { Msix, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_SIZE, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_PBA, PCI_MSIX_TABLE, type MsiSink, type MsixState } from './msix.js';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_ID_BLOCK,
  VIRTIO_ID_CONSOLE, VIRTIO_ID_NET, VIRTIO_MSI_NO_VECTOR } from './status.js';
import { Virtqueue, type VirtqueueState } from './virtqueue.js';

export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
export const VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040;

export const COMMON_CFG_OFFSET = 0x0000;
export const ISR_CFG_OFFSET = 0x1000;
export const DEVICE_CFG_OFFSET = 0x2000;
export const NOTIFY_CFG_OFFSET = 0x3000;
export const NOTIFY_OFF_MULTIPLIER = 4;
export const CONFIG_BAR = 0;
export const MSIX_BAR = 1;
const WINDOW = 0x1000;

/** ISR status bits (§4.1.4.5). */
export const VIRTIO_PCI_ISR_QUEUE = 0x1;
export const VIRTIO_PCI_ISR_CONFIG = 0x2;

/** Guest writes to a doorbell address that signal the transport without an exit (KVM_IOEVENTFD). */
export interface Doorbell {
  /** Make `len`-byte writes to `addr` ring. False when it cannot (the write then exits as MMIO). */
  add(addr: number, len: number): boolean;
  /** Stop every address added. */
  clear(): void;
  close(): void;
}

export interface VirtioPciOptions {
  mem: DmaMemory;
  /** MSI delivery (KVM_SIGNAL_MSI). Without it MSI-X is still offered but messages go nowhere. */
  msi?: MsiSink;
  /** A doorbell factory: `onRing` runs on the event loop when the guest notified any queue. */
  doorbell?: (onRing: () => void) => Doorbell;
  /** Called when device work was queued with setImmediate (the machine makes its run loop yield soon). */
  wake?: () => void;
}

export interface VirtioPciState extends PciDeviceState {
  common: CommonCfgState;
  msix: MsixState;
  queues: VirtqueueState[];
  isr: number;
  negotiated: string;
  device: unknown;
}

export interface VirtioPciCounters {
  /** Notifications by MMIO write (no doorbell, or a width the doorbell does not match). */
  mmioNotifies: number;
  /** Doorbell wake-ups. */
  doorbellRings: number;
  /** Times the driver's feature set was refused at FEATURES_OK. */
  featureRefusals: number;
  /** DEVICE_NEEDS_RESET raised (malformed queue, device error). */
  needsReset: number;
  /** Device callbacks that threw (a bug: treated as needs-reset). */
  deviceErrors: number;
}

function classCodeFor(type: number): number {
  switch (type) {
    case VIRTIO_ID_NET: return 0x020000;
    case VIRTIO_ID_BLOCK: return 0x010000;
    case VIRTIO_ID_CONSOLE: return 0x078000;
    default: return 0xff0000;
  }
}

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class VirtioPciDevice extends PciDevice implements VirtioDeviceContext {
  readonly device: VirtioDevice;
  readonly queues: Virtqueue[];
  readonly common: CommonCfg;
  readonly msix: Msix;
  readonly counters: VirtioPciCounters = { mmioNotifies: 0, doorbellRings: 0, featureRefusals: 0, needsReset: 0, deviceErrors: 0 };
  /** Why the device last asked for a reset, or undefined. */
  lastError: string | undefined;
  private isr = 0;
  private negotiated = 0n;
  private readonly offered: bigint;
  private readonly msixCap: number;
  private readonly pciCfgCap: number;
  private readonly doorbell: Doorbell | undefined;
  private readonly scheduled = new Set<number>();
  private immediate: NodeJS.Immediate | undefined;
  /** scheduleAfter() timers, by queue. */
  private readonly fallbacks = new Map<number, NodeJS.Timeout>();
  private closed = false;

  constructor(device: VirtioDevice, private readonly opts: VirtioPciOptions) {
    super({
      vendorId: VIRTIO_PCI_VENDOR_ID, deviceId: VIRTIO_PCI_MODERN_DEVICE_ID_BASE + device.deviceType,
      classCode: classCodeFor(device.deviceType), revision: 1,
      subsystemVendorId: VIRTIO_PCI_VENDOR_ID, subsystemId: 0x1100, interruptPin: 1,
    });
    this.device = device;
    this.offered = device.features | TRANSPORT_FEATURES;
    this.queues = device.queueMaxSizes.map((max, i) => new Virtqueue(opts.mem, i, max,
      () => this.interruptQueue(i), (_q, why) => this.needsReset(why)));
    if (this.queues.length === 0 || 4 * this.queues.length > WINDOW) throw new RangeError(`virtio: ${this.queues.length} queues`);
    if (device.configSize > WINDOW) throw new RangeError(`virtio: config space of ${device.configSize} bytes`);
    this.common = new CommonCfg({
      queues: this.queues,
      offeredFeatures: this.offered,
      vectorValid: (v) => v < this.msix.vectors,
      writeStatus: (v) => this.writeStatus(v),
      enableQueue: (i) => this.enableQueue(i),
    });
    // One vector per queue plus one for configuration changes, as Linux asks for first.
    this.msix = new Msix(this.queues.length + 1, opts.msi);

    this.defineBar(CONFIG_BAR, {
      kind: 'mmio', size: 0x4000,
      device: { read: (o, s) => this.readBar0(o, s), write: (o, s, v) => this.writeBar0(o, s, v) },
      onMapped: (base) => this.mapDoorbells(base),
    });
    const pbaOffset = Math.ceil(this.msix.tableBytes / 8) * 8;
    this.defineBar(MSIX_BAR, {
      kind: 'mmio', size: pow2AtLeast(Math.max(WINDOW, pbaOffset + this.msix.pbaBytes)),
      device: {
        read: (o, s) => (o < pbaOffset ? this.msix.tableWindow.read(o, s) : this.msix.pbaWindow.read(o - pbaOffset, s)),
        write: (o, s, v) => { if (o < pbaOffset) this.msix.tableWindow.write(o, s, v); },
      },
    });

    const caps = new CapabilityWriter(this.config);
    this.msixCap = caps.add(PCI_CAP_ID_MSIX, PCI_MSIX_CAP_SIZE);
    this.config.set16(this.msixCap + PCI_MSIX_FLAGS, this.msix.control);
    this.config.setWritable(this.msixCap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    this.config.set32(this.msixCap + PCI_MSIX_TABLE, 0 | MSIX_BAR);
    this.config.set32(this.msixCap + PCI_MSIX_PBA, pbaOffset | MSIX_BAR);
    caps.addVirtio(VIRTIO_PCI_CAP_COMMON_CFG, CONFIG_BAR, COMMON_CFG_OFFSET, VIRTIO_PCI_COMMON_CFG_SIZE);
    caps.addVirtio(VIRTIO_PCI_CAP_ISR_CFG, CONFIG_BAR, ISR_CFG_OFFSET, 1);
    if (device.configSize > 0) caps.addVirtio(VIRTIO_PCI_CAP_DEVICE_CFG, CONFIG_BAR, DEVICE_CFG_OFFSET, device.configSize);
    const notify = caps.addVirtio(VIRTIO_PCI_CAP_NOTIFY_CFG, CONFIG_BAR, NOTIFY_CFG_OFFSET, NOTIFY_OFF_MULTIPLIER * this.queues.length, VIRTIO_PCI_CAP_EXT_SIZE);
    this.config.set32(notify + VIRTIO_PCI_NOTIFY_CAP_MULT, NOTIFY_OFF_MULTIPLIER);
    // The PCI configuration access capability: a window onto the BARs through config space,
    // for drivers that cannot map them (§4.1.4.9). bar, offset and length are the driver's.
    this.pciCfgCap = caps.addVirtio(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, VIRTIO_PCI_CAP_EXT_SIZE);
    this.config.setWritable(this.pciCfgCap + VIRTIO_PCI_CAP_BAR, 1, 0xff);
    this.config.setWritable(this.pciCfgCap + VIRTIO_PCI_CAP_OFFSET, 4, 0xffff_ffff);
    this.config.setWritable(this.pciCfgCap + VIRTIO_PCI_CAP_LENGTH, 4, 0xffff_ffff);

    this.doorbell = opts.doorbell?.(() => this.ring());
    device.attach(this);
  }

  // --- VirtioDeviceContext ---

  queue(index: number): Virtqueue {
    const q = this.queues[index];
    if (q === undefined) throw new RangeError(`virtio: no queue ${index}`);
    return q;
  }

  get negotiatedFeatures(): bigint {
    return this.negotiated;
  }

  get driverOk(): boolean {
    const s = this.common.status;
    return (s & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (s & VIRTIO_CONFIG_S_NEEDS_RESET) === 0;
  }

  get status(): number {
    return this.common.status;
  }

  configChanged(): void {
    this.common.configGeneration = (this.common.configGeneration + 1) & 0xff;
    if (this.msix.enabled) {
      this.msix.notify(this.common.configVector);
      return;
    }
    this.isr |= VIRTIO_PCI_ISR_CONFIG;
    this.setIrqLevel(true);
  }

  needsReset(reason: string): void {
    this.lastError = reason;
    if ((this.common.status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) return;
    this.counters.needsReset++;
    this.common.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    // The driver learns of it through a configuration-change interrupt (§2.1.2), once it runs.
    if ((this.common.status & VIRTIO_CONFIG_S_DRIVER_OK) !== 0) this.configChanged();
  }

  schedule(index: number): void {
    if (this.closed) return;
    this.scheduled.add(index);
    if (this.immediate !== undefined) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      const due = [...this.scheduled];
      this.scheduled.clear();
      for (const i of due) this.service(i);
    });
    this.opts.wake?.();
  }

  scheduleAfter(index: number, ms: number): void {
    if (this.closed || this.fallbacks.has(index)) return;
    const t = setTimeout(() => {
      this.fallbacks.delete(index);
      this.schedule(index);
    }, ms);
    t.unref();
    this.fallbacks.set(index, t);
  }

  private clearFallbacks(): void {
    for (const t of this.fallbacks.values()) clearTimeout(t);
    this.fallbacks.clear();
  }

  // --- interrupts ---

  private interruptQueue(index: number): void {
    if (this.msix.enabled) {
      this.msix.notify(this.common.queueVectors[index]!);
      return;
    }
    this.isr |= VIRTIO_PCI_ISR_QUEUE;
    this.setIrqLevel(true);
  }

  // --- device work ---

  /** Let the device handle queue `index` once; reschedule when it says work is left. */
  private service(index: number): void {
    if (!this.driverOk || this.closed) return;
    let more: boolean | void;
    try {
      more = this.device.queueNotify(index);
    } catch (e) {
      this.counters.deviceErrors++;
      this.needsReset(`device error on queue ${index}: ${(e as Error)?.message ?? String(e)}`);
      return;
    }
    if (more === true) this.schedule(index);
  }

  /** The doorbell rang: some queue was notified (one eventfd serves them all). */
  private ring(): void {
    this.counters.doorbellRings++;
    for (let i = 0; i < this.queues.length; i++) if (this.queues[i]!.ready) this.service(i);
  }

  private mapDoorbells(base: number | undefined): void {
    if (this.doorbell === undefined) return;
    this.doorbell.clear();
    if (base === undefined) return;
    // Linux writes the queue index as 16 bits; other widths still exit and are handled below.
    const sync = this.device.synchronousQueues ?? [];
    for (let i = 0; i < this.queues.length; i++) {
      if (!sync.includes(i)) this.doorbell.add(base + NOTIFY_CFG_OFFSET + NOTIFY_OFF_MULTIPLIER * i, 2);
    }
  }

  // --- BAR 0 ---

  private readBar0(offset: number, size: number): number {
    if (offset < COMMON_CFG_OFFSET + VIRTIO_PCI_COMMON_CFG_SIZE) return this.common.read(offset, size);
    if (offset >= ISR_CFG_OFFSET && offset < ISR_CFG_OFFSET + WINDOW) {
      if (offset !== ISR_CFG_OFFSET) return 0;
      // Reading ISR acknowledges it (§4.1.4.5) and lowers INTx.
      const v = this.isr;
      this.isr = 0;
      this.setIrqLevel(false);
      return v;
    }
    if (offset >= DEVICE_CFG_OFFSET && offset < DEVICE_CFG_OFFSET + WINDOW) {
      const o = offset - DEVICE_CFG_OFFSET;
      if (o + size > this.device.configSize) return 0;
      return this.device.readConfig(o, size) >>> 0;
    }
    return 0;
  }

  private writeBar0(offset: number, size: number, value: number): void {
    if (offset < COMMON_CFG_OFFSET + VIRTIO_PCI_COMMON_CFG_SIZE) {
      this.common.write(offset, size, value);
      return;
    }
    if (offset >= DEVICE_CFG_OFFSET && offset < DEVICE_CFG_OFFSET + WINDOW) {
      const o = offset - DEVICE_CFG_OFFSET;
      if (o + size <= this.device.configSize) this.device.writeConfig(o, size, value);
      return;
    }
    if (offset >= NOTIFY_CFG_OFFSET && offset < NOTIFY_CFG_OFFSET + WINDOW) {
      const rel = offset - NOTIFY_CFG_OFFSET;
      const index = Math.floor(rel / NOTIFY_OFF_MULTIPLIER);
      if (rel % NOTIFY_OFF_MULTIPLIER !== 0 || index >= this.queues.length) return;
      this.counters.mmioNotifies++;
      // A queue the driver spins on is answered inside this exit; others from the event loop,
      // as the guest does not wait for them.
      if (this.device.synchronousQueues?.includes(index) === true) this.service(index);
      else this.schedule(index);
    }
  }

  // --- status and queues ---

  private writeStatus(value: number): void {
    if (value === 0) {
      this.resetDevice();
      return;
    }
    const old = this.common.status;
    let next = old | value;
    if ((value & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (old & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      const why = featureRefusal(this.offered, this.common.driverFeatures);
      if (why !== undefined) {
        // Left clear: the driver reads status back and gives up (§3.1.1 step 6).
        next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        this.counters.featureRefusals++;
        this.lastError = why;
      } else {
        this.negotiated = this.common.driverFeatures;
      }
    }
    if ((next & VIRTIO_CONFIG_S_FEATURES_OK) === 0) next &= ~VIRTIO_CONFIG_S_DRIVER_OK;
    this.common.status = next;
    if ((next & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (old & VIRTIO_CONFIG_S_DRIVER_OK) === 0) {
      try {
        this.device.activate();
      } catch (e) {
        this.counters.deviceErrors++;
        this.needsReset(`device activate failed: ${(e as Error)?.message ?? String(e)}`);
        return;
      }
      // Buffers the driver made available before DRIVER_OK are looked at now.
      for (let i = 0; i < this.queues.length; i++) if (this.queues[i]!.ready) this.schedule(i);
    }
  }

  private enableQueue(index: number): void {
    const q = this.queues[index]!;
    q.eventIdx = hasFeature(this.negotiated, VIRTIO_RING_F_EVENT_IDX);
    q.indirect = hasFeature(this.negotiated, VIRTIO_RING_F_INDIRECT_DESC);
    // A refused layout breaks the queue, which raises DEVICE_NEEDS_RESET through onBroken.
    q.enable();
  }

  /** Device reset (status 0 from the driver, or the machine's reset). MSI-X is PCI state and stays. */
  resetDevice(): void {
    try {
      this.device.reset();
    } catch {
      this.counters.deviceErrors++;
    }
    for (const q of this.queues) q.reset();
    this.common.reset();
    this.negotiated = 0n;
    this.isr = 0;
    this.setIrqLevel(false);
    this.scheduled.clear();
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.clearFallbacks();
  }

  // --- config space: MSI-X control and the PCI configuration access window ---

  override readConfig(offset: number, size: number): number {
    const data = this.pciCfgCap + VIRTIO_PCI_CFG_DATA;
    if (offset >= data && offset < data + 4) return this.pciCfgAccess(offset - data, size, undefined);
    return super.readConfig(offset, size);
  }

  override writeConfig(offset: number, size: number, value: number): void {
    const data = this.pciCfgCap + VIRTIO_PCI_CFG_DATA;
    if (offset >= data && offset < data + 4) {
      this.pciCfgAccess(offset - data, size, value);
      return;
    }
    super.writeConfig(offset, size, value);
    const ctl = this.msixCap + PCI_MSIX_FLAGS;
    if (offset < ctl + 2 && offset + size > ctl) {
      const v = this.config.get16(ctl);
      this.msix.setControl((v & PCI_MSIX_FLAGS_ENABLE) !== 0, (v & PCI_MSIX_FLAGS_MASKALL) !== 0);
    }
  }

  /** An access through pci_cfg_data: `length` bytes at `offset` of the chosen BAR (1, 2 or 4). */
  private pciCfgAccess(within: number, size: number, value: number | undefined): number {
    const c = this.config;
    const bar = c.get8(this.pciCfgCap + VIRTIO_PCI_CAP_BAR);
    const off = c.get32(this.pciCfgCap + VIRTIO_PCI_CAP_OFFSET);
    const len = c.get32(this.pciCfgCap + VIRTIO_PCI_CAP_LENGTH);
    const def = this.barDefinition(bar);
    if (within !== 0 || size !== len || (len !== 1 && len !== 2 && len !== 4) || def === undefined || off + len > def.size || off % len !== 0) {
      return 0;
    }
    if (value === undefined) return def.device.read(off, len) >>> 0;
    def.device.write(off, len, value);
    return 0;
  }

  // --- lifecycle ---

  override saveState(): VirtioPciState {
    return {
      ...super.saveState(), common: this.common.saveState(), msix: this.msix.saveState(),
      queues: this.queues.map((q) => q.saveState()), isr: this.isr, negotiated: this.negotiated.toString(),
      device: this.device.saveState(),
    };
  }

  override loadState(s: VirtioPciState): void {
    this.common.loadState(s.common);
    this.msix.loadState(s.msix);
    this.negotiated = BigInt(s.negotiated);
    this.queues.forEach((q, i) => {
      const qs = s.queues[i];
      if (qs === undefined) return;
      q.loadState(qs);
      q.eventIdx = hasFeature(this.negotiated, VIRTIO_RING_F_EVENT_IDX);
      q.indirect = hasFeature(this.negotiated, VIRTIO_RING_F_INDIRECT_DESC);
    });
    this.isr = s.isr;
    this.device.loadState(s.device);
    super.loadState(s); // re-decodes the BARs (and re-adds the doorbells)
    for (let i = 0; i < this.queues.length; i++) if (this.queues[i]!.ready) this.schedule(i);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    this.clearFallbacks();
    this.doorbell?.close();
  }
}

export { VIRTIO_MSI_NO_VECTOR };
