// The virtio vendor-specific PCI capabilities (virtio 1.2 §4.1.4): where each configuration
// structure sits in which BAR, written into config space as a capability list.
import { PciConfigSpace, PCI_CAPABILITY_LIST, PCI_STATUS, PCI_STATUS_CAP_LIST } from '../pci/config-space.js';

export const PCI_CAP_ID_VNDR = 0x09;
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;

/** struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2], offset, length. */
export const VIRTIO_PCI_CAP_BAR = 4;
export const VIRTIO_PCI_CAP_OFFSET = 8;
export const VIRTIO_PCI_CAP_LENGTH = 12;
export const VIRTIO_PCI_CAP_SIZE = 16;
/** virtio_pci_notify_cap adds notify_off_multiplier; virtio_pci_cfg_cap adds pci_cfg_data[4]. */
export const VIRTIO_PCI_NOTIFY_CAP_MULT = 16;
export const VIRTIO_PCI_CFG_DATA = 16;
export const VIRTIO_PCI_CAP_EXT_SIZE = 20;

/** Appends capabilities to a config space's list, starting at 0x40. */
export class CapabilityWriter {
  private next = 0x40;
  private lastNextPtr = PCI_CAPABILITY_LIST;

  constructor(private readonly c: PciConfigSpace) {}

  /** Reserve `size` bytes for a capability with id `id`; returns its offset. */
  add(id: number, size: number): number {
    const at = this.next;
    if (at + size > 256) throw new RangeError('PCI capabilities do not fit in config space');
    this.c.set8(at, id);
    this.c.set8(at + 1, 0);
    this.c.set8(this.lastNextPtr, at);
    this.c.set16(PCI_STATUS, this.c.get16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    this.lastNextPtr = at + 1;
    this.next = (at + size + 3) & ~3;
    return at;
  }

  /** A virtio_pci_cap of `type` describing [offset, offset+length) in `bar`; `size` ≥ 16. */
  addVirtio(type: number, bar: number, offset: number, length: number, size = VIRTIO_PCI_CAP_SIZE): number {
    const at = this.add(PCI_CAP_ID_VNDR, size);
    this.c.set8(at + 2, size);
    this.c.set8(at + 3, type);
    this.c.set8(at + VIRTIO_PCI_CAP_BAR, bar);
    this.c.set32(at + VIRTIO_PCI_CAP_OFFSET, offset);
    this.c.set32(at + VIRTIO_PCI_CAP_LENGTH, length);
    return at;
  }
}
