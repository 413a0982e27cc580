// Feature bits (virtio 1.2 §6 "Reserved Feature Bits" and the device chapters) and the rules
// for negotiating them. Features are 64 bits wide; bigint keeps them exact (negotiation happens
// a handful of times per boot, never on a data path).

/** The indirect descriptor flag may be used (§2.7.5.3). */
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
/** used_event / avail_event suppress notifications (§2.7.7, §2.7.10). */
export const VIRTIO_RING_F_EVENT_IDX = 29;
/** Modern (1.x) device: little-endian, no legacy layout. Required of a non-transitional device. */
export const VIRTIO_F_VERSION_1 = 32;
/** The device may access memory as the platform's IOMMU says (we never offer it). */
export const VIRTIO_F_ACCESS_PLATFORM = 33;

export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

export function hasFeature(features: bigint, n: number): boolean {
  return (features & bit(n)) !== 0n;
}

/** Features the transport offers for every device on top of the device's own. */
export const TRANSPORT_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX);

/** The 32-bit word `select` (0 or 1, or more: reads as zero) of a 64-bit feature set. */
export function featureWord(features: bigint, select: number): number {
  if (select < 0 || select > 1) return 0;
  return Number((features >> BigInt(32 * select)) & 0xffff_ffffn);
}

/** `features` with word `select` replaced by `value` (words past 1 are ignored). */
export function withFeatureWord(features: bigint, select: number, value: number): bigint {
  if (select < 0 || select > 1) return features;
  const shift = BigInt(32 * select);
  return (features & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift);
}

/**
 * Why the driver's feature set cannot be accepted at FEATURES_OK (§3.1.1, §6.1), or undefined.
 * The driver may accept only what was offered; a modern device requires VERSION_1.
 */
export function featureRefusal(offered: bigint, accepted: bigint): string | undefined {
  const extra = accepted & ~offered;
  if (extra !== 0n) return `driver accepted features not offered: 0x${extra.toString(16)}`;
  if (!hasFeature(accepted, VIRTIO_F_VERSION_1)) return 'driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not served)';
  return undefined;
}
