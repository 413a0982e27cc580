// Checksums the network code needs: the Ethernet FCS (CRC-32, also the RTL8139 multicast hash)
// and the Internet one's-complement checksum (RFC 1071) for IPv4, TCP and UDP offload. Both run
// for every frame a NIC moves, so they take the fast paths: zlib's CRC-32 (the same IEEE 802.3
// polynomial, reflected, with the final inversion) and an unrolled loop for the one's-complement sum.
import * as zlib from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** zlib.crc32 arrived in Node 20.15 and 22.2; older Nodes use the table below. */
const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** IEEE 802.3 CRC-32 of bytes[start, end) as transmitted (the FCS value, reflected). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  if (zlibCrc32 !== undefined) return zlibCrc32(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end)) >>> 0;
  return crc32Table(bytes, start, end);
}

/** The same CRC-32, byte by byte through a table (the fallback, and the tests' reference). */
export function crc32Table(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * The multicast hash bit (0..63) the RTL8139 and Linux's `ether_crc(6, addr) >> 26` agree on:
 * the top 6 bits of the big-endian (non-reflected) CRC-32 of the destination MAC.
 */
export function multicastHashBit(mac: Uint8Array, offset = 0): number {
  let crc = 0xffffffff;
  for (let i = 0; i < 6; i++) {
    let octet = mac[offset + i]!;
    for (let bit = 0; bit < 8; bit++, octet >>>= 1) {
      const top = (crc >>> 31) ^ (octet & 1);
      crc = (crc << 1) >>> 0;
      if (top) crc = (crc ^ 0x04c11db7) >>> 0;
    }
  }
  return crc >>> 26;
}

/**
 * Running sum of 16-bit big-endian words over bytes[start, end) (odd tail padded), for
 * foldChecksum() to reduce. The value is congruent to the plain word sum modulo 0xffff and zero
 * only when that sum is, which is all the one's-complement fold sees. Spans of 64 bytes and more
 * are summed as 32-bit little-endian words through a Uint32Array view: a quarter of the loads of
 * a byte loop and no shifts, which matters most where every load is emulated (the nested lab's
 * TCG ran the byte loop at 33 µs per received 1500-byte frame, a tenth of the VMM's CPU).
 */
export function sum16(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  if (end - start < 64) return initial + sum16Bytes(bytes, start, end, start);
  // The 4-byte-aligned middle [a, b) as words, the 0-3 bytes either side one by one.
  const base = bytes.byteOffset;
  const a = start + ((4 - ((base + start) & 3)) & 3);
  const words = (end - a) >>> 2;
  const b = a + words * 4;
  const w = new Uint32Array(bytes.buffer, base + a, words);
  let s0 = 0;
  let s1 = 0;
  let i = 0;
  for (; i + 3 < words; i += 4) {
    s0 += w[i]! + w[i + 2]!;
    s1 += w[i + 1]! + w[i + 3]!;
  }
  for (; i < words; i++) s0 += w[i]!;
  // Exact in a double (< 2^53 for any 64 KiB span). A little-endian word holds two big-endian
  // 16-bit words byte-swapped, and a byte swap is multiplication by 256 modulo 0xffff (2^16 ≡ 1):
  // so the middle's big-endian sum is 256 * its little-endian sum when it starts on an even
  // offset from `start`, and that sum unchanged on an odd one.
  const le = s0 + s1;
  let mid = le % 0xffff;
  if (mid === 0 && le !== 0) mid = 0xffff;
  if (((a - start) & 1) === 0) mid *= 256;
  return initial + mid + sum16Bytes(bytes, start, a, start) + sum16Bytes(bytes, b, end, start);
}

/** Bytes [from, to) as big-endian 16-bit words paired from `origin` (even offsets are high). */
function sum16Bytes(bytes: Uint8Array, from: number, to: number, origin: number): number {
  let s = 0;
  let i = from;
  if (((i - origin) & 1) !== 0 && i < to) s += bytes[i++]!;
  for (; i + 7 < to; i += 8) {
    s += ((bytes[i]! << 8) | bytes[i + 1]!) + ((bytes[i + 2]! << 8) | bytes[i + 3]!) +
      ((bytes[i + 4]! << 8) | bytes[i + 5]!) + ((bytes[i + 6]! << 8) | bytes[i + 7]!);
  }
  for (; i + 1 < to; i += 2) s += (bytes[i]! << 8) | bytes[i + 1]!;
  if (i < to) s += bytes[i]! << 8;
  return s;
}

/** Fold a running sum into the final one's-complement checksum (16 bits). */
export function foldChecksum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/** Internet checksum of bytes[start, end). */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return foldChecksum(sum16(bytes, start, end));
}

/** Sum of the IPv4 pseudo-header for a TCP/UDP segment of `l4Length` bytes. */
export function ipv4PseudoHeaderSum(frame: Uint8Array, ipOffset: number, protocol: number, l4Length: number): number {
  return sum16(frame, ipOffset + 12, ipOffset + 20) + protocol + l4Length;
}

/** Compute and store the IPv4 header checksum of the header at `ipOffset` (IHL from the header). */
export function fillIpv4HeaderChecksum(frame: Uint8Array, ipOffset: number): void {
  const ihl = (frame[ipOffset]! & 0x0f) * 4;
  frame[ipOffset + 10] = 0;
  frame[ipOffset + 11] = 0;
  const c = internetChecksum(frame, ipOffset, ipOffset + ihl);
  frame[ipOffset + 10] = c >>> 8;
  frame[ipOffset + 11] = c & 0xff;
}

/**
 * Compute and store a TCP (protocol 6) or UDP (17) checksum over frame[l4Offset, l4Offset+l4Length)
 * with the IPv4 pseudo-header. `csumField` is the checksum's offset inside the L4 header
 * (16 for TCP, 6 for UDP). A UDP checksum of 0 is sent as 0xffff (RFC 768).
 */
export function fillL4Checksum(frame: Uint8Array, ipOffset: number, l4Offset: number, l4Length: number, protocol: number): void {
  const field = l4Offset + (protocol === 6 ? 16 : 6);
  frame[field] = 0;
  frame[field + 1] = 0;
  let c = foldChecksum(sum16(frame, l4Offset, l4Offset + l4Length, ipv4PseudoHeaderSum(frame, ipOffset, protocol, l4Length)));
  if (protocol === 17 && c === 0) c = 0xffff;
  frame[field] = c >>> 8;
  frame[field + 1] = c & 0xff;
}

/**
 * Store in the TCP/UDP checksum field only the folded, uncomplemented pseudo-header sum over
 * `l4Length` bytes: Linux's CHECKSUM_PARTIAL form, which whoever finishes the checksum (or cuts
 * the segment) expects.
 */
export function fillL4PartialChecksum(frame: Uint8Array, ipOffset: number, l4Offset: number, l4Length: number, protocol: number): void {
  const field = l4Offset + (protocol === 6 ? 16 : 6);
  const c = ~foldChecksum(ipv4PseudoHeaderSum(frame, ipOffset, protocol, l4Length)) & 0xffff;
  frame[field] = c >>> 8;
  frame[field + 1] = c & 0xff;
}

/** True when the L4 checksum of a received TCP/UDP segment verifies (UDP 0 = "no checksum"). */
export function verifyL4Checksum(frame: Uint8Array, ipOffset: number, l4Offset: number, l4Length: number, protocol: number): boolean {
  if (protocol === 17 && frame[l4Offset + 6] === 0 && frame[l4Offset + 7] === 0) return true;
  const s = sum16(frame, l4Offset, l4Offset + l4Length, ipv4PseudoHeaderSum(frame, ipOffset, protocol, l4Length));
  return foldChecksum(s) === 0;
}
