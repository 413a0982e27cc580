// Receive offloads of a TAP (TUNSETOFFLOAD with TUN_F_CSUM | TUN_F_TSO4): the host stack may
// then hand us a TCP/IPv4 "super-frame" of up to 64 KiB with one virtio-net header instead of
// ~45 wire-sized segments, and frames whose TCP/UDP checksum it left for us to finish. Both
// save the host's per-segment work (segmenting, checksumming, one tun read each) in the VMM's
// own thread. What reaches a NIC is still plain wire frames: this module cuts and finishes
// them. The header's fields come from the host kernel, and are still checked like any input.
import { foldChecksum, sum16 } from './checksum.js';
import { TcpSegmenter } from './tcp-segmentation.js';

/** <linux/virtio_net.h> values this module reads (the layout offsets come from the shim). */
export const VNET_F_NEEDS_CSUM = 1;
export const VNET_F_DATA_VALID = 2;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_ECN = 0x80;

/** Offsets of struct virtio_net_hdr's fields (little-endian on x86; TUNSETVNETBE is never used). */
export interface VnetHeaderLayout {
  flags: number;
  gso_type: number;
  hdr_len: number;
  gso_size: number;
  csum_start: number;
  csum_offset: number;
}

/**
 * A flag a backend passes with a received frame: its IPv4 header and TCP/UDP checksums are
 * known to be correct (we just computed them, or the host kernel vouched for them), so a NIC
 * that reports checksum status to its driver need not sum the frame again.
 */
export const RX_CHECKSUMS_VALID = 1;

export type OffloadResult =
  /** `kind`: passed as is, checksum finished, or cut from a super-frame. */
  | { frames: Uint8Array[]; flags: number; kind: 'plain' | 'checksummed' | 'segmented' }
  | { error: string };

function u16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

/**
 * The wire frames for one frame read from an offloading TAP, whose virtio-net header starts at
 * `hdr[at]`. A plain frame comes back as is (zero copies); the checksum of a NEEDS_CSUM frame
 * is finished in place (the frame belongs to the backend's read buffer); a TCPv4 GSO frame is
 * cut into segments of `gso_size` with every checksum computed. Anything else, or a header
 * that does not fit its frame, is an error for the caller to count.
 */
export function finishReceiveOffload(frame: Uint8Array, hdr: Uint8Array, at: number, L: VnetHeaderLayout): OffloadResult {
  const flags = hdr[at + L.flags]!;
  const gso = hdr[at + L.gso_type]!;
  if (gso === VNET_GSO_NONE) {
    if ((flags & VNET_F_NEEDS_CSUM) === 0) {
      return { frames: [frame], flags: (flags & VNET_F_DATA_VALID) !== 0 ? RX_CHECKSUMS_VALID : 0, kind: 'plain' };
    }
    // The field at csum_start + csum_offset holds the pseudo-header sum; the checksum covers
    // everything from csum_start to the end of the frame (the host's frames carry no padding).
    const start = u16(hdr, at + L.csum_start);
    const field = start + u16(hdr, at + L.csum_offset);
    if (field + 2 > frame.length) return { error: `checksum field at ${field} is past the ${frame.length}-byte frame` };
    const c = foldChecksum(sum16(frame, start, frame.length)) || 0xffff;
    frame[field] = c >>> 8;
    frame[field + 1] = c & 0xff;
    return { frames: [frame], flags: RX_CHECKSUMS_VALID, kind: 'checksummed' };
  }
  const seg = receiveOffloadSegmenter(frame, hdr, at, L);
  if (seg === undefined) return { error: 'unreachable: a GSO frame without a GSO type' };
  if ('error' in seg) return seg;
  return { frames: seg.cut(seg.total), flags: RX_CHECKSUMS_VALID, kind: 'segmented' };
}

/**
 * For a TCPv4 GSO frame: a segmenter over it instead of its segments, for a caller that cuts
 * a few at a time (a guest that advertises a tiny MSS makes the host send 64 KiB super-frames
 * of ~1,800 segments). The segmenter works on `frame` itself (see TcpSegmenter.detached).
 * Undefined when the header asks for no segmentation; an error when it asks for what was not
 * enabled or the frame cannot be cut.
 */
export function receiveOffloadSegmenter(frame: Uint8Array, hdr: Uint8Array, at: number, L: VnetHeaderLayout): TcpSegmenter | { error: string } | undefined {
  const gso = hdr[at + L.gso_type]!;
  if (gso === VNET_GSO_NONE) return undefined;
  if ((gso & ~VNET_GSO_ECN) !== VNET_GSO_TCPV4) return { error: `GSO type ${gso} was not enabled` };
  const mss = u16(hdr, at + L.gso_size);
  const seg = mss === 0 ? undefined : TcpSegmenter.of(frame, mss);
  if (seg === undefined) return { error: `a GSO frame of ${frame.length} bytes (MSS ${mss}) is not TCP/IPv4 that can be cut` };
  return seg;
}
