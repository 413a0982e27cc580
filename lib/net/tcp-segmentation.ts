// TCP/IPv4 segmentation (TSO) on whole Ethernet frames, for whoever has to cut a large TCP
// frame into wire-sized segments: the RTL8139C+'s LargeSend, and a capture that records what
// the wire would carry when a TAP takes the frame whole (NetBackend.sendSegmented).
import type { TcpSegmentation } from './backend.js';
import { fillIpv4HeaderChecksum, fillL4Checksum, fillL4PartialChecksum } from './checksum.js';

const ETH_P_IP = 0x0800;
const ETH_P_8021Q = 0x8100;
const IPPROTO_TCP = 6;

export interface Ipv4Info {
  /** Offset of the IPv4 header in the frame. */
  l3: number;
  ihl: number;
  /** IP total length, validated against the frame. */
  totalLength: number;
  protocol: number;
  /** Offset of the L4 header. */
  l4: number;
  /** True for any fragment (MF set or non-zero offset): no L4 header to trust. */
  fragment: boolean;
}

/** Locate a well-formed IPv4 header (optionally behind one 802.1Q tag); undefined otherwise. */
export function parseIpv4(frame: Uint8Array): Ipv4Info | undefined {
  if (frame.length < 14) return undefined;
  let l3 = 14;
  let type = (frame[12]! << 8) | frame[13]!;
  if (type === ETH_P_8021Q) {
    if (frame.length < 18) return undefined;
    type = (frame[16]! << 8) | frame[17]!;
    l3 = 18;
  }
  if (type !== ETH_P_IP || frame.length < l3 + 20) return undefined;
  const vihl = frame[l3]!;
  const ihl = (vihl & 0x0f) * 4;
  if (vihl >>> 4 !== 4 || ihl < 20 || frame.length < l3 + ihl) return undefined;
  const totalLength = (frame[l3 + 2]! << 8) | frame[l3 + 3]!;
  if (totalLength < ihl || l3 + totalLength > frame.length) return undefined;
  const frag = ((frame[l3 + 6]! << 8) | frame[l3 + 7]!) & 0x3fff;
  return { l3, ihl, totalLength, protocol: frame[l3 + 9]!, l4: l3 + ihl, fragment: frag !== 0 };
}

interface TcpFrame {
  info: Ipv4Info;
  /** TCP header length (data offset). */
  doff: number;
  /** End of the headers / start of the payload. */
  hdrEnd: number;
  /** End of the IP datagram (Ethernet padding after it is not payload). */
  payloadEnd: number;
  payload: number;
}

/** The TCP layout of an IPv4/TCP frame a descriptor asked to segment; undefined if it has none. */
function parseTcpFrame(frame: Uint8Array, mss: number): TcpFrame | undefined {
  const info = parseIpv4(frame);
  if (info === undefined || info.protocol !== IPPROTO_TCP || info.fragment || mss <= 0) return undefined;
  const tcpLen = info.totalLength - info.ihl;
  if (tcpLen < 20) return undefined;
  const doff = (frame[info.l4 + 12]! >>> 4) * 4;
  if (doff < 20 || doff > tcpLen) return undefined;
  const hdrEnd = info.l4 + doff;
  const payloadEnd = info.l3 + info.totalLength;
  return { info, doff, hdrEnd, payloadEnd, payload: payloadEnd - hdrEnd };
}

/**
 * TCP segmentation offload: cut an IPv4/TCP frame with a payload larger than `mss` into
 * frames of at most `mss` payload bytes. IP id increments per segment, IP length and both
 * checksums are recomputed, the sequence number advances, and FIN/PSH stay only on the last
 * segment (CWR only on the first). Returns undefined when the frame is not TSO-able.
 */
export function segmentTcp(frame: Uint8Array, mss: number): Uint8Array[] | undefined {
  const s = TcpSegmenter.of(frame, mss);
  return s === undefined ? undefined : s.cut(s.total);
}

/**
 * segmentTcp a few segments at a time: whoever cuts a frame into many segments on the main
 * thread (the RTL8139C+'s LargeSend, with an MSS as small as 8 and a 64 KiB payload) takes
 * what its budget allows and comes back for the rest on a later turn. The segmenter keeps its
 * own copy of the frame (the guest may reuse its buffers meanwhile) and its position.
 */
export class TcpSegmenter {
  /** Index of the next segment cut() returns. */
  next = 0;
  /** Segments the frame makes in all. */
  readonly total: number;

  private constructor(readonly frame: Uint8Array, readonly mss: number, private readonly t: TcpFrame) {
    this.total = t.payload <= mss ? 1 : Math.ceil(t.payload / mss);
  }

  /** A segmenter over `frame` (kept, not copied), or undefined when the frame is not TSO-able. */
  static of(frame: Uint8Array, mss: number): TcpSegmenter | undefined {
    const t = parseTcpFrame(frame, mss);
    return t === undefined ? undefined : new TcpSegmenter(frame, mss, t);
  }

  get done(): boolean {
    return this.next >= this.total;
  }

  /** The same segmenter (same position) over its own copy of the frame, which may then be reused. */
  detached(): TcpSegmenter {
    const s = new TcpSegmenter(this.frame.slice(), this.mss, this.t);
    s.next = this.next;
    return s;
  }

  /** Ethernet + IP + TCP header bytes each segment repeats. */
  get headerLength(): number {
    return this.t.hdrEnd;
  }

  /** Wire bytes of segments [next, next + count). */
  bytesOf(count: number): number {
    const n = Math.min(count, this.total - this.next);
    if (n <= 0) return 0;
    const payloadEnd = Math.min(this.t.payload, (this.next + n) * this.mss);
    return n * this.t.hdrEnd + payloadEnd - this.next * this.mss;
  }

  /** The next `count` segments (fewer at the end), in one allocation. */
  cut(count: number): Uint8Array[] {
    const { frame, mss } = this;
    const { info, doff, hdrEnd, payloadEnd, payload } = this.t;
    const out: Uint8Array[] = [];
    if (payload <= mss) {
      if (this.next > 0 || count <= 0) return out;
      this.next = 1;
      const one = frame.slice(0, payloadEnd);
      fillIpv4HeaderChecksum(one, info.l3);
      fillL4Checksum(one, info.l3, info.l4, info.totalLength - info.ihl, IPPROTO_TCP);
      out.push(one);
      return out;
    }
    const first = this.next;
    const n = Math.min(count, this.total - first);
    if (n <= 0) return out;
    const total = this.bytesOf(n);
    this.next = first + n;
    const id0 = (frame[info.l3 + 4]! << 8) | frame[info.l3 + 5]!;
    const seq0 = ((frame[info.l4 + 4]! << 24) | (frame[info.l4 + 5]! << 16) | (frame[info.l4 + 6]! << 8) | frame[info.l4 + 7]!) >>> 0;
    const flags0 = frame[info.l4 + 13]!;
    // One allocation for these segments (each a view of its own part of it), not zero-filled
    // first: the loop below writes every byte of it (a header and a payload slice per segment).
    const raw = Buffer.allocUnsafeSlow(total);
    const buf = new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
    for (let i = first, at = 0; i < first + n; i++) {
      const off = i * mss;
      const len = Math.min(mss, payload - off);
      const last = off + len >= payload;
      const seg = buf.subarray(at, at + hdrEnd + len);
      at += hdrEnd + len;
      seg.set(frame.subarray(0, hdrEnd));
      seg.set(frame.subarray(hdrEnd + off, hdrEnd + off + len), hdrEnd);
      const ipLen = info.ihl + doff + len;
      seg[info.l3 + 2] = ipLen >>> 8;
      seg[info.l3 + 3] = ipLen & 0xff;
      const id = (id0 + i) & 0xffff;
      seg[info.l3 + 4] = id >>> 8;
      seg[info.l3 + 5] = id & 0xff;
      const seq = (seq0 + off) >>> 0;
      seg[info.l4 + 4] = seq >>> 24;
      seg[info.l4 + 5] = (seq >>> 16) & 0xff;
      seg[info.l4 + 6] = (seq >>> 8) & 0xff;
      seg[info.l4 + 7] = seq & 0xff;
      let flags = flags0;
      if (!last) flags &= ~(0x01 | 0x08); // FIN, PSH
      if (i > 0) flags &= ~0x80; // CWR
      seg[info.l4 + 13] = flags;
      fillIpv4HeaderChecksum(seg, info.l3);
      fillL4Checksum(seg, info.l3, info.l4, doff + len, IPPROTO_TCP);
      out.push(seg);
    }
    return out;
  }
}

/**
 * The other way to honour LargeSend: leave the cutting to the backend (NetBackend.sendSegmented).
 * Completes the IPv4 header checksum, puts the pseudo-header sum in the TCP checksum field
 * (TcpSegmentation's convention) and trims Ethernet padding. Undefined when the frame is not
 * TSO-able or fits in one segment: segmentTcp handles those.
 */
export function prepareSegmentation(frame: Uint8Array, mss: number): { frame: Uint8Array; tso: TcpSegmentation } | undefined {
  const t = parseTcpFrame(frame, mss);
  if (t === undefined || t.payload <= mss) return undefined;
  const whole = t.payloadEnd === frame.length ? frame : frame.subarray(0, t.payloadEnd);
  fillIpv4HeaderChecksum(whole, t.info.l3);
  fillL4PartialChecksum(whole, t.info.l3, t.info.l4, t.info.totalLength - t.info.ihl, IPPROTO_TCP);
  return { frame: whole, tso: { mss, l4Offset: t.info.l4, headerLength: t.hdrEnd, segments: Math.ceil(t.payload / mss) } };
}
