// Receive side shared by both modes (address filter, frame preparation) and the normal-mode
// RX ring buffer that 8139too uses.
//
// Ring layout (datasheet "Receive Buffer"): RBSTART points at 8K/16K/32K/64K (+16) bytes of
// guest RAM. Each packet is a 4-byte header {u16 status, u16 length incl. 4-byte CRC}, the
// frame, its CRC, then padding to the next dword. CBR (RxBufAddr) is the chip's write offset;
// the driver's read offset is CAPR+16, because drivers write RxBufPtr as (read pointer - 16).
import type { DmaMemory } from '../../bus/device.js';
import { crc32, multicastHashBit } from '../../net/checksum.js';
import {
  AcceptAllPhys, AcceptBroadcast, AcceptMulticast, AcceptMyPhys, IDR0, MAR0, RxBroadcast,
  RxCfgLenShift, RxCfgWrap, RxMulticast, RxPhysical,
} from './regs.js';

/** Frames shorter than this are padded, as the wire would have delivered them. */
export const ETH_ZLEN = 60;
/** 8139too treats longer packets (> 1792 + CRC) as a ring corruption and resets: drop them. */
export const RX_MAX_FRAME = 1792;

/**
 * The address filter of RxConfig: returns the RxBroadcast/RxPhysical/RxMulticast status bits
 * of an accepted frame, or -1 if it is filtered out.
 */
export function filterFrame(frame: Uint8Array, regs: Uint8Array, rxConfig: number): number {
  if (frame.length < 6) return -1;
  const d0 = frame[0]!;
  if ((d0 & 1) !== 0) {
    let bcast = true;
    for (let i = 0; i < 6; i++) if (frame[i] !== 0xff) { bcast = false; break; }
    if (bcast) return (rxConfig & (AcceptBroadcast | AcceptAllPhys)) !== 0 ? RxBroadcast : -1;
    if ((rxConfig & AcceptAllPhys) !== 0) return RxMulticast;
    if ((rxConfig & AcceptMulticast) === 0) return -1;
    const bit = multicastHashBit(frame, 0);
    return (regs[MAR0 + (bit >>> 3)]! & (1 << (bit & 7))) !== 0 ? RxMulticast : -1;
  }
  let mine = true;
  for (let i = 0; i < 6; i++) if (frame[i] !== regs[IDR0 + i]) { mine = false; break; }
  if (mine && (rxConfig & (AcceptMyPhys | AcceptAllPhys)) !== 0) return RxPhysical;
  return (rxConfig & AcceptAllPhys) !== 0 ? 0 : -1;
}

/** The frame padded to 60 bytes as the wire would carry it (the frame itself when long enough). */
export function padFrame(frame: Uint8Array): Uint8Array {
  if (frame.length >= ETH_ZLEN) return frame;
  const out = new Uint8Array(ETH_ZLEN);
  out.set(frame);
  return out;
}

/**
 * The FCS written after a (padded) frame, as 4 bytes in wire order. A shared scratch: it is
 * copied into guest RAM before the next frame is prepared.
 */
const fcsBytes = new Uint8Array(4);
export function fcsOf(padded: Uint8Array): Uint8Array {
  const fcs = crc32(padded);
  fcsBytes[0] = fcs & 0xff;
  fcsBytes[1] = (fcs >>> 8) & 0xff;
  fcsBytes[2] = (fcs >>> 16) & 0xff;
  fcsBytes[3] = fcs >>> 24;
  return fcsBytes;
}

export type RxResult = 'ok' | 'full' | 'dma-error';

/** The 4-byte packet header, reused: store() copies it into guest RAM at once. */
const headerBytes = new Uint8Array(4);

/** The normal-mode ring: read and write offsets, plus the copy into guest RAM. */
export class RxRing {
  /** CBR: offset where the next packet header goes. */
  writeOffset = 0;
  /** The driver's read offset (CAPR + 16). */
  readOffset = 0;

  reset(): void {
    this.writeOffset = 0;
    this.readOffset = 0;
  }

  static size(rxConfig: number): number {
    return 8192 << ((rxConfig >>> RxCfgLenShift) & 3);
  }

  get capr(): number {
    return (this.readOffset - 16) & 0xffff;
  }

  /** Driver wrote RxBufPtr (CAPR). */
  setCapr(value: number, rxConfig: number): void {
    this.readOffset = ((value & 0xffff) + 16) % RxRing.size(rxConfig);
  }

  get empty(): boolean {
    return this.readOffset === this.writeOffset;
  }

  /**
   * Store one frame (already padded) and its FCS with header `status`; the length in the header
   * counts the FCS. Never throws: a ring outside guest RAM reports 'dma-error', a ring without
   * room for it 'full'.
   */
  store(mem: DmaMemory, rbstart: number, rxConfig: number, frame: Uint8Array, status: number): RxResult {
    const size = RxRing.size(rxConfig);
    // A ring shrunk under us (RxConfig rewritten mid-stream) may leave offsets past its end.
    if (this.writeOffset >= size || this.readOffset >= size) {
      this.writeOffset %= size;
      this.readOffset %= size;
    }
    const len = frame.length + 4;
    const total = (4 + len + 3) & ~3;
    const used = (this.writeOffset - this.readOffset + size) % size;
    // Keep one dword free so a full ring never looks empty (write offset == read offset).
    if (total >= size - used) return 'full';
    // WRAP (Linux's RxNoWrap) lets the packet run past the ring end into the 1.5K+16 slack the
    // driver allocated; without it (and always in 64K mode) the data wraps to the ring start.
    const linear = (rxConfig & RxCfgWrap) !== 0 && size < 65536;
    const span = linear ? this.writeOffset + 4 + len : size;
    if (!mem.contains(rbstart, Math.max(span, size))) return 'dma-error';
    const header = headerBytes;
    header[0] = status & 0xff;
    header[1] = (status >>> 8) & 0xff;
    header[2] = len & 0xff;
    header[3] = (len >>> 8) & 0xff;
    this.copy(mem, rbstart, size, linear, this.writeOffset, header);
    this.copy(mem, rbstart, size, linear, this.writeOffset + 4, frame);
    this.copy(mem, rbstart, size, linear, this.writeOffset + 4 + frame.length, fcsOf(frame));
    this.writeOffset = (this.writeOffset + total) % size;
    return 'ok';
  }

  /** Copy `bytes` to ring offset `at`; without WRAP, offsets past the end wrap to the start. */
  private copy(mem: DmaMemory, rbstart: number, size: number, linear: boolean, at: number, bytes: Uint8Array): void {
    const offset = linear ? at : at % size;
    if (linear || offset + bytes.length <= size) {
      mem.write(rbstart + offset, bytes);
      return;
    }
    const first = size - offset;
    mem.write(rbstart + offset, bytes.subarray(0, first));
    mem.write(rbstart, bytes.subarray(first));
  }
}

