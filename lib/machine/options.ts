// Machine options: parsing and validation, so every caller mistake is reported before a VM
// exists (nothing to clean up, nothing half-started).
import { readFileSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { InvalidArgumentError } from '../errors.js';
import { MIN_MEMORY } from '../boot/layout.js';
import type { NetBackend } from '../net/backend.js';
import { validatePorts, type ConsolePortOptions } from '../devices/virtio/console.js';
import { resolveShares, type ResolvedShare, type ShareOptions } from '../devices/virtio/9p/share.js';

export interface NetOptions {
  /** Any NetBackend: a TapBackend, a switch port, a LinkShaper… */
  backend: NetBackend;
  /** Station address (EEPROM and IDR0-5). Default 52:54:00:12:34:5x. */
  mac?: string;
  /** PCI revision: 0x20 RTL8139C+ (Linux 8139cp, the default) or 0x10 RTL8139 (8139too). */
  revision?: 0x10 | 0x20;
}

export interface MachineOptions {
  /** Kernel: a path or the bytes (bzImage, vmlinux ELF, Multiboot ELF, or flat with `flat`). */
  kernel: string | Uint8Array;
  initrd?: string | Uint8Array;
  cmdline?: string;
  /** '256M', '1G', or bytes. Default 256M. */
  memory?: string | number;
  cpus?: number;
  /** Extra legacy devices: 'com2'…'com4'. */
  devices?: string[];
  net?: NetOptions[];
  /**
   * virtio-console ports (a multiport virtio-console PCI device): each a named channel the
   * guest sees as /dev/vport<d>p<n> with /sys/class/virtio-ports/<dev>/name; machine.port(name)
   * is the host end.
   */
  ports?: ConsolePortOptions[];
  /**
   * Host directories shared over virtio-9p, one PCI device each: the guest mounts one with
   * `mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR`. See lib/devices/virtio/9p/share.ts.
   */
  shares?: ShareOptions[];
  /** Flat binaries: where to load and how to enter. */
  flat?: { loadAddress?: number; entry?: number; mode?: 'real' | 'protected' | 'long' };
  /** Clear CPUID XSAVE for the guest (default: on inside the nested lab, where TCG's SVM misses XSETBV). */
  clearXsave?: boolean;
  /** Path of /dev/kvm. */
  kvmPath?: string;
}

export interface ResolvedOptions {
  kernel: Uint8Array;
  kernelName: string;
  initrd?: Uint8Array;
  cmdline: string;
  memory: number;
  cpus: number;
  comPorts: number;
  net: NetOptions[];
  ports: ConsolePortOptions[];
  shares: ResolvedShare[];
  flat: MachineOptions['flat'];
  clearXsave: boolean;
  kvmPath: string;
}

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** '256M' / '1G' / '512k' / 1048576 → bytes. */
export function parseSize(v: string | number, what = 'memory'): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`${what} must be a positive integer, got ${v}`, 'ERR_INVALID_MEMORY');
    return v;
  }
  const m = /^\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*$/.exec(String(v));
  if (!m) throw new InvalidArgumentError(`${what} "${v}" is not a size like 256M or 1G`, 'ERR_INVALID_MEMORY');
  return Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
}

function readInput(v: string | Uint8Array, what: string): { bytes: Uint8Array; name: string } {
  if (v instanceof Uint8Array) return { bytes: v, name: what };
  if (typeof v !== 'string' || v.length === 0) throw new InvalidArgumentError(`${what} must be a path or a Uint8Array`);
  try {
    if (!statSync(v).isFile()) throw new InvalidArgumentError(`${what} ${v} is not a regular file`, 'ERR_FILE');
    return { bytes: readFileSync(v), name: v.split('/').pop() ?? v };
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw new InvalidArgumentError(`cannot read ${what} ${v}: ${(e as NodeJS.ErrnoException).code ?? e}`, 'ERR_FILE');
  }
}

export function resolveOptions(o: MachineOptions, maxVcpus: number): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('Machine.create needs an options object');
  if (o.kernel === undefined) throw new InvalidArgumentError('kernel is required (a path or bytes)', 'ERR_NO_KERNEL');
  const memory = parseSize(o.memory ?? '256M');
  if (memory < MIN_MEMORY) throw new InvalidArgumentError(`memory must be at least 16M, got ${memory} bytes`, 'ERR_INVALID_MEMORY');
  if (memory % 4096 !== 0) throw new InvalidArgumentError('memory must be a multiple of 4 KiB', 'ERR_INVALID_MEMORY');
  if (memory > totalmem()) {
    throw new InvalidArgumentError(`memory ${memory} bytes is more than this host has (${totalmem()})`, 'ERR_MEMORY_TOO_LARGE');
  }
  const cpus = o.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > maxVcpus) {
    throw new InvalidArgumentError(`cpus must be an integer from 1 to ${maxVcpus} (KVM's limit), got ${cpus}`, 'ERR_INVALID_CPUS');
  }
  let comPorts = 1;
  for (const d of o.devices ?? []) {
    const m = /^com([1-4])$/.exec(d);
    if (!m) throw new InvalidArgumentError(`unknown device "${d}" (known: com2, com3, com4)`, 'ERR_UNKNOWN_DEVICE');
    comPorts = Math.max(comPorts, Number(m[1]));
  }
  const net = o.net ?? [];
  for (const n of net) {
    if (n === null || typeof n !== 'object' || typeof n.backend?.send !== 'function') {
      throw new InvalidArgumentError('each net entry needs { backend: NetBackend }', 'ERR_INVALID_NET');
    }
    if (n.revision !== undefined && n.revision !== 0x10 && n.revision !== 0x20) {
      throw new InvalidArgumentError('net revision must be 0x10 (8139too) or 0x20 (8139cp)', 'ERR_INVALID_NET');
    }
  }
  const ports = validatePorts(o.ports);
  const shares = resolveShares(o.shares);
  const k = readInput(o.kernel, 'kernel');
  if (k.bytes.length === 0) throw new InvalidArgumentError('kernel is empty', 'ERR_KERNEL_FORMAT');
  const initrd = o.initrd === undefined ? undefined : readInput(o.initrd, 'initrd').bytes;
  if (initrd !== undefined && initrd.length >= memory) {
    throw new InvalidArgumentError(`initrd (${initrd.length} bytes) does not fit in ${memory} bytes of RAM`, 'ERR_INITRD_TOO_LARGE');
  }
  return {
    kernel: k.bytes, kernelName: k.name, initrd, cmdline: o.cmdline ?? '', memory, cpus, comPorts, net, ports, shares,
    flat: o.flat, clearXsave: o.clearXsave ?? process.env.NODE_KVM_LAB === '1', kvmPath: o.kvmPath ?? '/dev/kvm',
  };
}
