// The common configuration structure (virtio 1.2 §4.1.4.3, struct virtio_pci_common_cfg):
// feature words, device status, and the per-queue registers behind queue_select. This file
// decodes register accesses; what a status change or queue enable means is the transport's.
import { VIRTIO_MSI_NO_VECTOR } from './status.js';
import { featureWord, withFeatureWord } from './features.js';
import type { Virtqueue } from './virtqueue.js';

export const VIRTIO_PCI_COMMON_DFSELECT = 0x00;
export const VIRTIO_PCI_COMMON_DF = 0x04;
export const VIRTIO_PCI_COMMON_GFSELECT = 0x08;
export const VIRTIO_PCI_COMMON_GF = 0x0c;
export const VIRTIO_PCI_COMMON_MSIX = 0x10;
export const VIRTIO_PCI_COMMON_NUMQ = 0x12;
export const VIRTIO_PCI_COMMON_STATUS = 0x14;
export const VIRTIO_PCI_COMMON_CFGGENERATION = 0x15;
export const VIRTIO_PCI_COMMON_Q_SELECT = 0x16;
export const VIRTIO_PCI_COMMON_Q_SIZE = 0x18;
export const VIRTIO_PCI_COMMON_Q_MSIX = 0x1a;
export const VIRTIO_PCI_COMMON_Q_ENABLE = 0x1c;
export const VIRTIO_PCI_COMMON_Q_NOFF = 0x1e;
export const VIRTIO_PCI_COMMON_Q_DESCLO = 0x20;
export const VIRTIO_PCI_COMMON_Q_DESCHI = 0x24;
export const VIRTIO_PCI_COMMON_Q_AVAILLO = 0x28;
export const VIRTIO_PCI_COMMON_Q_AVAILHI = 0x2c;
export const VIRTIO_PCI_COMMON_Q_USEDLO = 0x30;
export const VIRTIO_PCI_COMMON_Q_USEDHI = 0x34;
/** Bytes of the structure we implement (up to queue_device; no notify_data / queue_reset). */
export const VIRTIO_PCI_COMMON_CFG_SIZE = 0x38;

/** Field widths by offset, for splitting an access of any width into fields. */
const FIELDS: ReadonlyArray<[number, number]> = [
  [0x00, 4], [0x04, 4], [0x08, 4], [0x0c, 4], [0x10, 2], [0x12, 2], [0x14, 1], [0x15, 1],
  [0x16, 2], [0x18, 2], [0x1a, 2], [0x1c, 2], [0x1e, 2], [0x20, 4], [0x24, 4], [0x28, 4],
  [0x2c, 4], [0x30, 4], [0x34, 4],
];

/** What the common config needs from the transport. */
export interface CommonCfgHost {
  readonly queues: readonly Virtqueue[];
  /** Everything the device offers (device bits + transport bits). */
  readonly offeredFeatures: bigint;
  /** Whether `v` names an MSI-X table entry (else the vector register reads back NO_VECTOR). */
  vectorValid(v: number): boolean;
  /** The driver wrote device_status (0 = reset). */
  writeStatus(value: number): void;
  /** The driver wrote 1 to queue_enable of queue `index`. */
  enableQueue(index: number): void;
}

export interface CommonCfgState {
  deviceFeatureSelect: number;
  driverFeatureSelect: number;
  driverFeatures: string;
  status: number;
  configGeneration: number;
  queueSelect: number;
  configVector: number;
  queueVectors: number[];
}

export class CommonCfg {
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  /** What the driver wrote to driver_feature (both words). */
  driverFeatures = 0n;
  /** device_status as the driver sees it (the transport keeps it). */
  status = 0;
  configGeneration = 0;
  queueSelect = 0;
  configVector = VIRTIO_MSI_NO_VECTOR;
  queueVectors: number[];
  /** Accesses to undefined offsets or with a width the field does not have (ignored). */
  oddAccesses = 0;

  constructor(private readonly host: CommonCfgHost) {
    this.queueVectors = host.queues.map(() => VIRTIO_MSI_NO_VECTOR);
  }

  reset(): void {
    this.deviceFeatureSelect = this.driverFeatureSelect = 0;
    this.driverFeatures = 0n;
    this.status = 0;
    this.queueSelect = 0;
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.queueVectors.fill(VIRTIO_MSI_NO_VECTOR);
  }

  private get queue(): Virtqueue | undefined {
    return this.host.queues[this.queueSelect];
  }

  /** The value of the field at `field` (a FIELDS offset). */
  private fieldValue(field: number): number {
    const q = this.queue;
    switch (field) {
      case VIRTIO_PCI_COMMON_DFSELECT: return this.deviceFeatureSelect;
      case VIRTIO_PCI_COMMON_DF: return featureWord(this.host.offeredFeatures, this.deviceFeatureSelect);
      case VIRTIO_PCI_COMMON_GFSELECT: return this.driverFeatureSelect;
      case VIRTIO_PCI_COMMON_GF: return featureWord(this.driverFeatures, this.driverFeatureSelect);
      case VIRTIO_PCI_COMMON_MSIX: return this.configVector;
      case VIRTIO_PCI_COMMON_NUMQ: return this.host.queues.length;
      case VIRTIO_PCI_COMMON_STATUS: return this.status;
      case VIRTIO_PCI_COMMON_CFGGENERATION: return this.configGeneration;
      case VIRTIO_PCI_COMMON_Q_SELECT: return this.queueSelect;
      // A queue_select past num_queues reads queue_size 0: "queue not available" (§4.1.4.3).
      case VIRTIO_PCI_COMMON_Q_SIZE: return q?.size ?? 0;
      case VIRTIO_PCI_COMMON_Q_MSIX: return q === undefined ? VIRTIO_MSI_NO_VECTOR : this.queueVectors[this.queueSelect]!;
      case VIRTIO_PCI_COMMON_Q_ENABLE: return q?.enabled ? 1 : 0;
      case VIRTIO_PCI_COMMON_Q_NOFF: return q === undefined ? 0 : this.queueSelect;
      case VIRTIO_PCI_COMMON_Q_DESCLO: return lo(q?.descAddr);
      case VIRTIO_PCI_COMMON_Q_DESCHI: return hi(q?.descAddr);
      case VIRTIO_PCI_COMMON_Q_AVAILLO: return lo(q?.driverAddr);
      case VIRTIO_PCI_COMMON_Q_AVAILHI: return hi(q?.driverAddr);
      case VIRTIO_PCI_COMMON_Q_USEDLO: return lo(q?.deviceAddr);
      case VIRTIO_PCI_COMMON_Q_USEDHI: return hi(q?.deviceAddr);
      default: return 0;
    }
  }

  /** A read of any width at any offset: assembled byte by byte from the fields it covers. */
  read(offset: number, size: number): number {
    const f = FIELDS.find(([o, w]) => o === offset && w === size);
    if (f !== undefined) return this.fieldValue(offset) >>> 0;
    this.oddAccesses++;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const b = offset + i;
      const field = FIELDS.find(([o, w]) => b >= o && b < o + w);
      const byte = field === undefined ? 0 : (this.fieldValue(field[0]) >>> (8 * (b - field[0]))) & 0xff;
      v = v * 256 + byte;
    }
    return v >>> 0;
  }

  /** Writes must hit one field with its own width (§4.1.3.1); anything else is ignored and counted. */
  write(offset: number, size: number, value: number): void {
    const f = FIELDS.find(([o, w]) => o === offset && w === size);
    if (f === undefined) {
      this.oddAccesses++;
      return;
    }
    const q = this.queue;
    // Queue registers are frozen once the queue is enabled (§4.1.4.3.2: the driver MUST NOT
    // change them); the enable write itself is the transport's to check.
    const frozen = q === undefined || q.enabled;
    switch (offset) {
      case VIRTIO_PCI_COMMON_DFSELECT: this.deviceFeatureSelect = value >>> 0; break;
      case VIRTIO_PCI_COMMON_GFSELECT: this.driverFeatureSelect = value >>> 0; break;
      case VIRTIO_PCI_COMMON_GF:
        // After FEATURES_OK the feature set is fixed.
        if ((this.status & 0x08) === 0) this.driverFeatures = withFeatureWord(this.driverFeatures, this.driverFeatureSelect, value);
        break;
      case VIRTIO_PCI_COMMON_MSIX: this.configVector = this.host.vectorValid(value) ? value : VIRTIO_MSI_NO_VECTOR; break;
      case VIRTIO_PCI_COMMON_STATUS: this.host.writeStatus(value & 0xff); break;
      case VIRTIO_PCI_COMMON_Q_SELECT: this.queueSelect = value & 0xffff; break;
      case VIRTIO_PCI_COMMON_Q_SIZE: if (!frozen) q.size = value & 0xffff; break;
      case VIRTIO_PCI_COMMON_Q_MSIX:
        if (q !== undefined) this.queueVectors[this.queueSelect] = this.host.vectorValid(value) ? value : VIRTIO_MSI_NO_VECTOR;
        break;
      case VIRTIO_PCI_COMMON_Q_ENABLE: if (!frozen && (value & 1) === 1) this.host.enableQueue(this.queueSelect); break;
      case VIRTIO_PCI_COMMON_Q_DESCLO: if (!frozen) q.descAddr = setLo(q.descAddr, value); break;
      case VIRTIO_PCI_COMMON_Q_DESCHI: if (!frozen) q.descAddr = setHi(q.descAddr, value); break;
      case VIRTIO_PCI_COMMON_Q_AVAILLO: if (!frozen) q.driverAddr = setLo(q.driverAddr, value); break;
      case VIRTIO_PCI_COMMON_Q_AVAILHI: if (!frozen) q.driverAddr = setHi(q.driverAddr, value); break;
      case VIRTIO_PCI_COMMON_Q_USEDLO: if (!frozen) q.deviceAddr = setLo(q.deviceAddr, value); break;
      case VIRTIO_PCI_COMMON_Q_USEDHI: if (!frozen) q.deviceAddr = setHi(q.deviceAddr, value); break;
      default: this.oddAccesses++; // read-only field
    }
  }

  saveState(): CommonCfgState {
    return {
      deviceFeatureSelect: this.deviceFeatureSelect, driverFeatureSelect: this.driverFeatureSelect,
      driverFeatures: this.driverFeatures.toString(), status: this.status, configGeneration: this.configGeneration,
      queueSelect: this.queueSelect, configVector: this.configVector, queueVectors: [...this.queueVectors],
    };
  }

  loadState(s: CommonCfgState): void {
    this.deviceFeatureSelect = s.deviceFeatureSelect;
    this.driverFeatureSelect = s.driverFeatureSelect;
    this.driverFeatures = BigInt(s.driverFeatures);
    this.status = s.status;
    this.configGeneration = s.configGeneration;
    this.queueSelect = s.queueSelect;
    this.configVector = s.configVector;
    this.queueVectors = this.queueVectors.map((_, i) => s.queueVectors[i] ?? VIRTIO_MSI_NO_VECTOR);
  }
}

// 64-bit guest addresses held as numbers: the high dword is kept below 2^21 so the value stays
// exact; a larger one cannot be RAM, and the queue's enable check refuses it.
function lo(v: number | undefined): number { return v === undefined ? 0 : v % 0x1_0000_0000; }
function hi(v: number | undefined): number { return v === undefined ? 0 : Math.floor(v / 0x1_0000_0000); }
function setLo(v: number, x: number): number { return hi(v) * 0x1_0000_0000 + (x >>> 0); }
function setHi(v: number, x: number): number { return Math.min(x >>> 0, 0x1f_ffff) * 0x1_0000_0000 + lo(v); }
