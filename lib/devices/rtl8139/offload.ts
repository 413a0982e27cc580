// C+ mode offloads on whole Ethernet frames: IPv4/TCP/UDP checksum insertion, TCP segmentation
// (LargeSend, in lib/net/tcp-segmentation.ts), 802.1Q tag insertion and stripping, and RX
// checksum verification.
import {
  fillIpv4HeaderChecksum, fillL4Checksum, internetChecksum, verifyL4Checksum,
} from '../../net/checksum.js';
import { parseIpv4 } from '../../net/tcp-segmentation.js';
import { IPFail, PID0, RxProtoIP, RxProtoTCP, RxProtoUDP, TCPFail, UDPFail } from './regs.js';

const ETH_P_8021Q = 0x8100;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/**
 * Fill the checksums the descriptor asked for. Returns false when the frame is not IPv4 with
 * the requested transport (the frame is then sent unchanged, as the chip would).
 */
export function insertChecksums(frame: Uint8Array, ip: boolean, tcp: boolean, udp: boolean): boolean {
  const info = parseIpv4(frame);
  if (info === undefined) return false;
  if (ip) fillIpv4HeaderChecksum(frame, info.l3);
  const want = tcp ? IPPROTO_TCP : udp ? IPPROTO_UDP : 0;
  if (want === 0) return true;
  if (info.protocol !== want || info.fragment) return false;
  const l4Len = info.totalLength - info.ihl;
  if (l4Len < (want === IPPROTO_TCP ? 20 : 8)) return false;
  fillL4Checksum(frame, info.l3, info.l4, l4Len, want);
  return true;
}

/** Insert an 802.1Q tag with `tci` (host order) after the MAC addresses. */
export function insertVlanTag(frame: Uint8Array, tci: number): Uint8Array {
  if (frame.length < 12) return frame;
  const out = new Uint8Array(frame.length + 4);
  out.set(frame.subarray(0, 12));
  out[12] = ETH_P_8021Q >>> 8;
  out[13] = ETH_P_8021Q & 0xff;
  out[14] = (tci >>> 8) & 0xff;
  out[15] = tci & 0xff;
  out.set(frame.subarray(12), 16);
  return out;
}

/** If the frame carries an 802.1Q tag, return [untagged frame, tci]; otherwise undefined. */
export function stripVlanTag(frame: Uint8Array): [Uint8Array, number] | undefined {
  if (frame.length < 18 || ((frame[12]! << 8) | frame[13]!) !== ETH_P_8021Q) return undefined;
  const tci = (frame[14]! << 8) | frame[15]!;
  const out = new Uint8Array(frame.length - 4);
  out.set(frame.subarray(0, 12));
  out.set(frame.subarray(16), 12);
  return [out, tci];
}

/**
 * C+ RX descriptor protocol/checksum bits (PID1:PID0, IPFail/UDPFail/TCPFail) for a received
 * frame. 8139cp trusts PID = TCP/UDP without a Fail bit as CHECKSUM_UNNECESSARY, so anything
 * not verified here reports as plain IP or non-IP. `valid`: the backend vouched for the
 * checksums (RX_CHECKSUMS_VALID: it computed them itself), so only the protocol is looked up.
 */
export function rxChecksumStatus(frame: Uint8Array, valid = false): number {
  const info = parseIpv4(frame);
  if (info === undefined) return 0;
  let st = 0;
  if (!valid && internetChecksum(frame, info.l3, info.l3 + info.ihl) !== 0) st |= IPFail;
  const l4Len = info.totalLength - info.ihl;
  if (!info.fragment && info.protocol === IPPROTO_TCP && l4Len >= 20) {
    st |= RxProtoTCP * PID0;
    if (!valid && ((st & IPFail) !== 0 || !verifyL4Checksum(frame, info.l3, info.l4, l4Len, IPPROTO_TCP))) st |= TCPFail;
    return st;
  }
  if (!info.fragment && info.protocol === IPPROTO_UDP && l4Len >= 8) {
    st |= RxProtoUDP * PID0;
    if (!valid && ((st & IPFail) !== 0 || !verifyL4Checksum(frame, info.l3, info.l4, l4Len, IPPROTO_UDP))) st |= UDPFail;
    return st;
  }
  return st | RxProtoIP * PID0;
}

