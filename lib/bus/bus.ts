// The PIO and MMIO buses (DESIGN §5). A bus maps address ranges to BusDevices and does not care
// where a device sits: the device sees offsets from the base it was registered at, so a PCI BAR
// can be moved without the device noticing. Every guest I/O exit goes through `read`/`write`,
// so the hot path allocates nothing: a sorted array, a binary search and a last-hit cache.
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice } from './device.js';
import type { IoExit, MmioExit } from '../kvm/exit.js';

/** One registered window. */
export interface BusRange {
  /** First address of the window. */
  readonly base: number;
  /** Exclusive end. */
  readonly end: number;
  /** The device that answers it. */
  readonly device: BusDevice;
  /** The name given at registration, used in errors and diagnostics. */
  readonly name: string;
}

interface MutableRange {
  base: number;
  end: number;
  device: BusDevice;
  name: string;
}

/** All-ones for an access of `size` bytes (what an unclaimed ISA/PCI read returns). */
const ONES = [0, 0xff, 0xffff, 0xff_ffff, 0xffff_ffff] as const;
function allOnes(size: number): number {
  return size >= 4 ? 0xffff_ffff : ONES[size] ?? 0;
}

/** Called on each access that hits no device. */
export type BusMissHook = (direction: 'read' | 'write', addr: number, size: number, value: number) => void;

/** Maps address windows to devices and dispatches accesses. Registrations carry a name; an overlap is refused with `ERR_BUS_OVERLAP`, naming both. */
export class Bus {
  private ranges: MutableRange[] = [];
  private last: MutableRange | undefined;
  /** Reads that hit no device (or ran past a device's end). */
  readMisses = 0;
  /** Writes that hit no device (or ran past a device's end). */
  writeMisses = 0;
  /** Called on every miss, for diagnostics (misses are rare, so this costs nothing hot). */
  onMiss: BusMissHook | undefined;

  /**
   * @param limit one past the highest address this bus decodes (0x10000 for port I/O).
   */
  constructor(readonly limit: number = Number.MAX_SAFE_INTEGER) {}

  /** Reads and writes that hit no device. */
  get missCount(): number {
    return this.readMisses + this.writeMisses;
  }

  /** The registered windows, sorted by base. */
  get devices(): readonly BusRange[] {
    return this.ranges.map((r) => ({ ...r }));
  }

  /**
   * Claim [base, base+length) for `device`, under `name` (errors and diagnostics use it: an
   * overlap names both registrations). The same device may be registered at several windows
   * (each sees offsets from its own base).
   */
  register(base: number, length: number, device: BusDevice, name: string): void {
    this.checkWindow(base, length);
    if (device === null || typeof device !== 'object' || typeof device.read !== 'function' || typeof device.write !== 'function') {
      throw new InvalidArgumentError('device must implement BusDevice (read/write)');
    }
    if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('name must be a non-empty string: the registration\'s name in errors');
    const label = name;
    this.checkFree(base, base + length, undefined, label);
    this.ranges.push({ base, end: base + length, device, name: label });
    this.ranges.sort((a, z) => a.base - z.base);
  }

  /** Remove every window of `device`. Returns how many were removed. */
  unregister(device: BusDevice): number {
    const before = this.ranges.length;
    this.ranges = this.ranges.filter((r) => r.device !== device);
    this.last = undefined;
    return before - this.ranges.length;
  }

  /**
   * Move `device`'s window to `newBase`, keeping its length (PCI BAR reprogramming). The device
   * must have exactly one window on this bus.
   */
  move(device: BusDevice, newBase: number): void {
    const mine = this.ranges.filter((r) => r.device === device);
    if (mine.length === 0) throw new InvalidArgumentError('device is not registered on this bus', 'ERR_BUS_NOT_REGISTERED');
    if (mine.length > 1) throw new InvalidArgumentError('device has several windows on this bus; unregister and register instead', 'ERR_BUS_AMBIGUOUS');
    const r = mine[0]!;
    const length = r.end - r.base;
    this.checkWindow(newBase, length);
    this.checkFree(newBase, newBase + length, r, r.name);
    r.base = newBase;
    r.end = newBase + length;
    this.ranges.sort((a, z) => a.base - z.base);
    this.last = undefined;
  }

  /** The window holding `addr`, if any. */
  find(addr: number): BusRange | undefined {
    return this.lookup(addr);
  }

  /** Dispatch a read of `size` bytes at `addr`; a miss reads all-ones and is counted. */
  read(addr: number, size: number): number {
    const r = this.lookup(addr);
    if (r === undefined || addr + size > r.end) {
      this.readMisses++;
      if (this.onMiss !== undefined) this.onMiss('read', addr, size, 0);
      return allOnes(size);
    }
    return r.device.read(addr - r.base, size);
  }

  /** Dispatch a write of `size` bytes at `addr`; a miss is dropped and counted. */
  write(addr: number, size: number, value: number): void {
    const r = this.lookup(addr);
    if (r === undefined || addr + size > r.end) {
      this.writeMisses++;
      if (this.onMiss !== undefined) this.onMiss('write', addr, size, value);
      return;
    }
    r.device.write(addr - r.base, size, value);
  }

  private lookup(addr: number): MutableRange | undefined {
    const l = this.last;
    if (l !== undefined && addr >= l.base && addr < l.end) return l;
    const rs = this.ranges;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = rs[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else {
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  private checkWindow(base: number, length: number): void {
    if (!Number.isSafeInteger(base) || base < 0) throw new InvalidArgumentError(`bus base must be a non-negative integer, got ${base}`);
    if (!Number.isSafeInteger(length) || length <= 0) throw new InvalidArgumentError(`bus window length must be a positive integer, got ${length}`);
    if (base + length > this.limit) {
      throw new InvalidArgumentError(`window [0x${base.toString(16)}, +${length}) is beyond the bus limit 0x${this.limit.toString(16)}`, 'ERR_BUS_RANGE');
    }
  }

  private checkFree(start: number, end: number, except: MutableRange | undefined, label: string): void {
    for (const r of this.ranges) {
      if (r !== except && start < r.end && r.base < end) {
        throw new InvalidArgumentError(
          `${label} at [0x${start.toString(16)}, 0x${end.toString(16)}) overlaps ${r.name} at [0x${r.base.toString(16)}, 0x${r.end.toString(16)})`,
          'ERR_BUS_OVERLAP');
      }
    }
  }
}

/** Little-endian `size` bytes of `data` at `off` as an unsigned number (size ≤ 4). */
function getLe(data: Uint8Array, off: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + data[off + i]!;
  return v;
}

function putLe(data: Uint8Array, off: number, size: number, value: number): void {
  let v = value;
  for (let i = 0; i < size; i++) {
    data[off + i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}

/** The x86 I/O-port bus (64 KiB of ports). */
export class PioBus extends Bus {
  constructor() {
    super(0x1_0000);
  }

  /**
   * Serve a KVM_EXIT_IO: `count` accesses of `size` bytes (rep ins/outs), data packed
   * little-endian in `exit.data`. For 'in' the data is filled before the next run().
   */
  handleIo(exit: IoExit): void {
    const { port, size, data } = exit;
    // KVM sizes are 1, 2 or 4; never index past the data page whatever the exit says.
    const n = size > 0 && size <= 4 ? Math.min(exit.count, Math.floor(data.length / size)) : 0;
    if (exit.direction === 'out') {
      for (let i = 0, off = 0; i < n; i++, off += size) this.write(port, size, getLe(data, off, size));
    } else {
      for (let i = 0, off = 0; i < n; i++, off += size) putLe(data, off, size, this.read(port, size));
    }
  }
}

/** The guest-physical MMIO bus. */
export class MmioBus extends Bus {
  /**
   * Serve a KVM_EXIT_MMIO. Accesses wider than 4 bytes are split into a low dword at `address`
   * and the rest at `address + 4` (devices only ever see values that fit in 32 bits).
   */
  handleMmio(exit: MmioExit): void {
    const { address, data } = exit;
    const size = Math.min(exit.size, data.length);
    if (size <= 0) return;
    const lo = size > 4 ? 4 : size;
    const hi = size - lo;
    if (exit.isWrite) {
      this.write(address, lo, getLe(data, 0, lo));
      if (hi > 0) this.write(address + 4, hi, getLe(data, 4, hi));
    } else {
      putLe(data, 0, lo, this.read(address, lo));
      if (hi > 0) putLe(data, 4, hi, this.read(address + 4, hi));
    }
  }
}
