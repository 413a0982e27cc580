// QEMU's firmware configuration device (facts from QEMU docs/specs/fw_cfg.rst), traditional
// I/O-port interface only: a 16-bit selector at port 0x510 and a byte-wide data port at 0x511.
// Writing the selector picks an item and rewinds its offset to 0; each data read returns the
// next byte, and 0 past the end. Items are plain byte arrays the host set up before boot; files
// ("etc/e820", …) are items listed in the big-endian file directory at key 0x0019. DMA is not
// implemented, so the ID item does not advertise it, and data-port writes are ignored.
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice } from '../bus/device.js';
import type { Stateful } from './stateful.js';

export const FW_CFG_SELECTOR = 0; // port 0x510, 16-bit, little-endian on x86
export const FW_CFG_DATA = 1; // port 0x511, 8-bit
export const FW_CFG_IO_SIZE = 2;

// Selector keys
export const FW_CFG_SIGNATURE = 0x0000;
export const FW_CFG_ID = 0x0001;
export const FW_CFG_NB_CPUS = 0x0005;
export const FW_CFG_FILE_DIR = 0x0019;
export const FW_CFG_FILE_FIRST = 0x0020;
/** Bit 14: "write this item" — writes are not supported, the bit only selects. */
export const FW_CFG_WRITE_CHANNEL = 0x4000;
/** Bit 15: architecture-specific items (0x8000-0xbfff). */
export const FW_CFG_ARCH_LOCAL = 0x8000;
const FW_CFG_ENTRY_MASK = 0x3fff;

// FW_CFG_ID feature bits
export const FW_CFG_VERSION = 0x01; // traditional interface
export const FW_CFG_VERSION_DMA = 0x02; // not offered

/** struct FWCfgFile: size u32 BE, select u16 BE, reserved u16, name[56]. */
export const FW_CFG_FILE_ENTRY_SIZE = 64;
export const FW_CFG_MAX_NAME = 55; // 56 bytes including the NUL
/** e820 type numbers for `buildE820File`. */
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;

export interface FwCfgOptions {
  /** Boot CPU count reported at FW_CFG_NB_CPUS. */
  cpus: number;
}

interface FwCfgFile {
  name: string;
  key: number;
  size: number;
}

const EMPTY = new Uint8Array(0);

/** FwCfg.saveState(). */
export interface FwCfgState {
  selected: number;
  offset: number;
}

export class FwCfg implements BusDevice, Stateful<FwCfgState> {
  // Host-built configuration (not guest state: reset() keeps it).
  private readonly items = new Map<number, Uint8Array>();
  private readonly files: FwCfgFile[] = [];
  private nextFileKey = FW_CFG_FILE_FIRST;

  // Guest-visible state.
  private selected = 0;
  private current: Uint8Array = EMPTY;
  private offset = 0;

  constructor(opts: FwCfgOptions) {
    if (opts === null || typeof opts !== 'object') throw new InvalidArgumentError('FwCfg needs { cpus }');
    const { cpus } = opts;
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 0xffff) throw new InvalidArgumentError(`cpus must be an integer in [1, 65535], got ${cpus}`);
    this.items.set(FW_CFG_SIGNATURE, new TextEncoder().encode('QEMU'));
    const id = new Uint8Array(4);
    new DataView(id.buffer).setUint32(0, FW_CFG_VERSION, true);
    this.items.set(FW_CFG_ID, id);
    const n = new Uint8Array(2);
    new DataView(n.buffer).setUint16(0, cpus, true);
    this.items.set(FW_CFG_NB_CPUS, n);
    this.rebuildDirectory();
    this.reset();
  }

  /** Deselect (as at power-on). The configured items stay. */
  reset(): void {
    this.select(FW_CFG_SIGNATURE);
  }

  /**
   * Set a numbered item (e.g. 0x0003 RAM size, or an arch-local 0x8000+ key). Signature, ID,
   * file directory and the file key range are managed by the device and refused here.
   */
  setItem(key: number, bytes: Uint8Array): void {
    if (!Number.isInteger(key) || key < 0 || key > 0xffff || key & FW_CFG_WRITE_CHANNEL) {
      throw new InvalidArgumentError(`fw_cfg key must be a 16-bit selector without the write bit, got ${key}`, 'ERR_FW_CFG_KEY');
    }
    const entry = key & FW_CFG_ENTRY_MASK;
    if (!(key & FW_CFG_ARCH_LOCAL) && (entry === FW_CFG_SIGNATURE || entry === FW_CFG_ID || entry === FW_CFG_FILE_DIR || entry >= FW_CFG_FILE_FIRST)) {
      throw new InvalidArgumentError(`fw_cfg key 0x${key.toString(16)} is reserved (use addFile for files)`, 'ERR_FW_CFG_KEY');
    }
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError('fw_cfg item data must be a Uint8Array');
    this.items.set(key, bytes.slice());
    if (this.selected === key) this.select(key);
  }

  /** Add a named file; returns its selector key. Names are unique, 1-55 bytes, no NUL. */
  addFile(name: string, bytes: Uint8Array): number {
    if (typeof name !== 'string') throw new InvalidArgumentError('fw_cfg file name must be a string', 'ERR_FW_CFG_NAME');
    const encoded = new TextEncoder().encode(name);
    if (encoded.length === 0 || encoded.length > FW_CFG_MAX_NAME || encoded.includes(0)) {
      throw new InvalidArgumentError(`fw_cfg file name must be 1-${FW_CFG_MAX_NAME} bytes without NUL, got ${JSON.stringify(name)}`, 'ERR_FW_CFG_NAME');
    }
    if (this.files.some((f) => f.name === name)) {
      throw new InvalidArgumentError(`fw_cfg file ${JSON.stringify(name)} already exists`, 'ERR_FW_CFG_DUPLICATE');
    }
    if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError('fw_cfg file data must be a Uint8Array');
    if (bytes.length > 0xffff_ffff) throw new InvalidArgumentError('fw_cfg file larger than 4 GiB', 'ERR_FW_CFG_SIZE');
    if (this.nextFileKey > FW_CFG_ENTRY_MASK) throw new InvalidArgumentError('fw_cfg file slots exhausted', 'ERR_FW_CFG_FULL');
    const key = this.nextFileKey++;
    this.items.set(key, bytes.slice());
    this.files.push({ name, key, size: bytes.length });
    this.rebuildDirectory();
    return key;
  }

  /** The bytes behind a key (a copy), for tests and diagnostics. */
  item(key: number): Uint8Array | undefined {
    return this.items.get(key)?.slice();
  }

  read(offset: number, _size: number): number {
    if (offset !== FW_CFG_DATA) return 0xff; // the selector is write-only
    const cur = this.current;
    if (this.offset >= cur.length) return 0;
    return cur[this.offset++]!;
  }

  write(offset: number, size: number, value: number): void {
    if (offset !== FW_CFG_SELECTOR) return; // data writes are ignored (no write support)
    this.select(size >= 2 ? value & 0xffff : value & 0xff);
  }

  /** The guest-visible state: selected item and read offset (the items are host configuration). */
  saveState(): FwCfgState {
    return { selected: this.selected, offset: this.offset };
  }

  loadState(s: FwCfgState): void {
    this.select(s.selected);
    this.offset = s.offset;
  }

  private select(key: number): void {
    this.selected = key;
    // The write bit only asks for write access; reads still see the item.
    const item = this.items.get(key & ~FW_CFG_WRITE_CHANNEL);
    this.current = item ?? EMPTY;
    this.offset = 0;
  }

  private rebuildDirectory(): void {
    const sorted = [...this.files].sort((a, z) => (a.name < z.name ? -1 : a.name > z.name ? 1 : 0));
    const dir = new Uint8Array(4 + sorted.length * FW_CFG_FILE_ENTRY_SIZE);
    const dv = new DataView(dir.buffer);
    dv.setUint32(0, sorted.length, false);
    const enc = new TextEncoder();
    sorted.forEach((f, i) => {
      const at = 4 + i * FW_CFG_FILE_ENTRY_SIZE;
      dv.setUint32(at, f.size, false);
      dv.setUint16(at + 4, f.key, false);
      dir.set(enc.encode(f.name), at + 8); // NUL-padded: the rest of the 56 bytes stays 0
    });
    this.items.set(FW_CFG_FILE_DIR, dir);
    if (this.selected === FW_CFG_FILE_DIR) {
      const off = this.offset;
      this.select(FW_CFG_FILE_DIR);
      this.offset = off;
    }
  }
}

export interface E820Entry {
  addr: number | bigint;
  size: number | bigint;
  /** E820_RAM, E820_RESERVED, … */
  type: number;
}

/** The `etc/e820` fw_cfg file: packed { u64 address, u64 length, u32 type } little-endian. */
export function buildE820File(entries: readonly E820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * 20);
  const dv = new DataView(out.buffer);
  entries.forEach((e, i) => {
    const addr = toU64(e.addr, 'addr');
    const size = toU64(e.size, 'size');
    if (!Number.isInteger(e.type) || e.type < 0 || e.type > 0xffff_ffff) {
      throw new InvalidArgumentError(`e820 type must be a u32, got ${e.type}`);
    }
    dv.setBigUint64(i * 20, addr, true);
    dv.setBigUint64(i * 20 + 8, size, true);
    dv.setUint32(i * 20 + 16, e.type, true);
  });
  return out;
}

function toU64(v: number | bigint, what: string): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new InvalidArgumentError(`e820 ${what} out of u64 range: ${v}`);
    return v;
  }
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`e820 ${what} must be a non-negative integer, got ${v}`);
  return BigInt(v);
}
