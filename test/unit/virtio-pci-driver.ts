// A guest-side virtio-pci driver for unit tests: finds the capabilities, negotiates features,
// sets up queues in fake guest RAM and notifies, all through config space and BAR accesses.
import type { GuestMemory } from '../../lib/kvm/memory.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { PCI_CAPABILITY_LIST } from '../../lib/devices/pci/config-space.js';
import * as C from '../../lib/devices/virtio/common-cfg.js';
import { VirtioPciDevice, type VirtioPciOptions } from '../../lib/devices/virtio/pci-transport.js';
import type { VirtioDevice } from '../../lib/devices/virtio/device.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { TestDriver } from './virtio-driver.js';

export const RAM = 0x40_0000;
export const BAR0 = 0xfe00_0000;
export const BAR1 = 0xfe10_0000;

export interface Msi { address: bigint; data: number }

export function plug(device: VirtioDevice, opts: Partial<VirtioPciOptions> = {}) {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  const msis: Msi[] = [];
  const fn = new VirtioPciDevice(device, { mem, msi: { signalMsi: (address, data) => msis.push({ address, data }) }, ...opts });
  const irq = new RecordingIrqLine();
  fn.attach({ map: () => {}, unmap: () => {} }, irq);
  fn.setBarAddress(0, BAR0);
  fn.setBarAddress(1, BAR1);
  fn.enableCommand(0x6);
  const bar0 = fn.barDefinition(0)!.device;
  const bar1 = fn.barDefinition(1)!.device;
  return { mem, fn, irq, msis, bar0, bar1, drv: new PciDriver(fn, mem) };
}

/** Capabilities found by walking the list: type → { offset in config space, bar, offset, length }. */
export function virtioCaps(fn: VirtioPciDevice): Map<number, { at: number; bar: number; offset: number; length: number }> {
  const out = new Map<number, { at: number; bar: number; offset: number; length: number }>();
  for (let at = fn.readConfig(PCI_CAPABILITY_LIST, 1), n = 0; at !== 0 && n < 48; at = fn.readConfig(at + 1, 1), n++) {
    if (fn.readConfig(at, 1) !== 0x09) continue;
    out.set(fn.readConfig(at + 3, 1), { at, bar: fn.readConfig(at + 4, 1), offset: fn.readConfig(at + 8, 4), length: fn.readConfig(at + 12, 4) });
  }
  return out;
}

export class PciDriver {
  private nextFree = 0x10_0000;
  readonly queues: TestDriver[] = [];
  constructor(readonly fn: VirtioPciDevice, readonly mem: GuestMemory) {}

  r(o: number, s: number): number { return this.fn.barDefinition(0)!.device.read(o, s); }
  w(o: number, s: number, v: number): void { this.fn.barDefinition(0)!.device.write(o, s, v); }

  get status(): number { return this.r(C.VIRTIO_PCI_COMMON_STATUS, 1); }

  deviceFeatures(): bigint {
    this.w(C.VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    const lo = this.r(C.VIRTIO_PCI_COMMON_DF, 4);
    this.w(C.VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    const hi = this.r(C.VIRTIO_PCI_COMMON_DF, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether the device kept FEATURES_OK. */
  negotiate(features: bigint): boolean {
    this.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 0);
    this.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 1);
    this.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 3);
    this.w(C.VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    this.w(C.VIRTIO_PCI_COMMON_GF, 4, Number(features & 0xffff_ffffn));
    this.w(C.VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    this.w(C.VIRTIO_PCI_COMMON_GF, 4, Number(features >> 32n));
    this.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 0xb);
    return (this.status & 0x8) !== 0;
  }

  /** Lay out queue `i` with `size` entries in fresh RAM and enable it. */
  setupQueue(i: number, size: number, vector = 0xffff): TestDriver {
    const desc = this.alloc(16 * size, 16);
    const avail = this.alloc(6 + 2 * size, 2);
    const used = this.alloc(6 + 8 * size, 4);
    this.w(C.VIRTIO_PCI_COMMON_Q_SELECT, 2, i);
    this.w(C.VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
    this.w(C.VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
    this.w(C.VIRTIO_PCI_COMMON_Q_DESCLO, 4, desc);
    this.w(C.VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    this.w(C.VIRTIO_PCI_COMMON_Q_AVAILLO, 4, avail);
    this.w(C.VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
    this.w(C.VIRTIO_PCI_COMMON_Q_USEDLO, 4, used);
    this.w(C.VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    this.w(C.VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    const d = new TestDriver(this.mem, size, desc, avail, used);
    this.queues[i] = d;
    return d;
  }

  driverOk(): void {
    this.w(C.VIRTIO_PCI_COMMON_STATUS, 1, this.status | 0x4);
  }

  notify(i: number): void {
    this.w(0x3000 + 4 * i, 2, i);
  }

  alloc(n: number, align = 16): number {
    const at = Math.ceil(this.nextFree / align) * align;
    this.nextFree = at + n;
    return at;
  }
}

export { RecordingIrqLine };
/** Let scheduled device work (setImmediate) run. */
export function settle(turns = 3): Promise<void> {
  return new Promise((r) => {
    let n = 0;
    const step = (): void => { if (++n >= turns) r(); else setImmediate(step); };
    setImmediate(step);
  });
}
