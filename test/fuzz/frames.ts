// Frames for the NIC fuzzer: random bytes, and IPv4/TCP/UDP frames (optionally VLAN-tagged,
// sometimes subtly malformed) so the checksum, VLAN and segmentation paths see real headers.
import type { Rng } from './rng.js';

const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

export function destination(rng: Rng, mac: Uint8Array): number[] {
  const k = rng.int(10);
  if (k < 5) return [...mac];
  if (k < 7) return BROADCAST;
  if (k < 9) return [0x01, 0x00, 0x5e, rng.u8() & 0x7f, rng.u8(), rng.u8()]; // IPv4 multicast
  return [...rng.bytes(6)];
}

/** An Ethernet frame with an IPv4 header and a TCP or UDP header, `payload` bytes after them. */
export function ipFrame(rng: Rng, dst: number[], payload: number): Uint8Array {
  const tagged = rng.chance(0.15);
  const l3 = tagged ? 18 : 14;
  const ihl = rng.chance(0.9) ? 20 : 4 * rng.range(5, 15);
  const tcp = rng.chance(0.7);
  const l4h = tcp ? (rng.chance(0.9) ? 20 : 4 * rng.range(5, 15)) : 8;
  const f = rng.junk(l3 + ihl + l4h + payload);
  f.fill(0, 0, l3 + ihl + l4h);
  f.set(dst, 0);
  f.set([0x02, 0x00, 0x00, rng.u8(), rng.u8(), rng.u8()], 6);
  if (tagged) {
    f.set([0x81, 0x00, rng.u8(), rng.u8()], 12);
  }
  f[l3 - 2] = 0x08;
  f[l3 - 1] = 0x00;
  f[l3] = 0x40 | (ihl / 4);
  const total = ihl + l4h + payload;
  let tl = total;
  if (rng.chance(0.05)) tl = rng.u16(); // a length that lies
  f[l3 + 2] = (tl >>> 8) & 0xff;
  f[l3 + 3] = tl & 0xff;
  if (rng.chance(0.05)) f[l3 + 6] = 0x20; // a fragment
  f[l3 + 8] = 64;
  f[l3 + 9] = tcp ? 6 : 17;
  f.set(rng.bytes(8), l3 + 12);
  const l4 = l3 + ihl;
  f.set(rng.bytes(4), l4);
  if (tcp) f[l4 + 12] = (l4h / 4) << 4;
  else {
    f[l4 + 4] = ((l4h + payload) >>> 8) & 0xff;
    f[l4 + 5] = (l4h + payload) & 0xff;
  }
  if (rng.chance(0.03)) f[rng.int(f.length)] = rng.u8(); // a flipped byte anywhere
  return f;
}

/** A frame as a backend may deliver one: any length (runts and jumbos too), any content. */
export function wireFrame(rng: Rng, mac: Uint8Array): Uint8Array {
  const dst = destination(rng, mac);
  if (rng.chance(0.5)) {
    const payload = rng.chance(0.9) ? rng.int(1400) : rng.int(9000);
    return ipFrame(rng, dst, payload);
  }
  const len = rng.chance(0.1) ? rng.int(20) : rng.chance(0.05) ? rng.range(1500, 9100) : rng.range(14, 1514);
  const f = rng.junk(len);
  f.set(dst.slice(0, Math.min(6, len)), 0);
  return f;
}
