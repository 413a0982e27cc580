// Machine options: parsing and validation, so every caller mistake is reported before a VM
// exists (nothing to clean up, nothing half-started).
import { totalmem } from 'node:os';
import { InvalidArgumentError } from '../errors.js';
import { parseSize, type Size } from '../size.js';
import { checkOptions, keysOf } from '../options-check.js';
import { MIN_MEMORY } from '../platform/layout.js';
import type { NetBackend } from '../net/backend.js';
import { readUserFile } from '../user-file.js';
import { validatePorts, type ConsolePortOptions } from '../devices/virtio/console.js';
import { resolveShares, type ResolvedShare, type ShareOptions } from '../devices/virtio/9p/share.js';

/** One NIC of a machine: an RTL8139 on the PCI bus and the backend that carries its frames. */
export interface NetOptions {
  /** Any NetBackend: a TapBackend, a switch port, a LinkShaper… */
  backend: NetBackend;
  /** Station address (EEPROM and IDR0-5). Default 52:54:00:12:34:5x. */
  mac?: string;
  /** PCI revision: 0x20 RTL8139C+ (Linux 8139cp, the default) or 0x10 RTL8139 (8139too). */
  revision?: 0x10 | 0x20;
}

/** Options of Machine.create(). Every one is validated before a VM exists; errors name the option. */
export interface MachineOptions {
  /** Kernel: a path or the bytes (bzImage, vmlinux ELF, Multiboot ELF, or flat with `flat`). */
  kernel: string | Uint8Array;
  /** Initial RAM disk: a path or the bytes. */
  initrd?: string | Uint8Array;
  /** Kernel command line (default: `console=ttyS0 reboot=k panic=-1 …`, see DEFAULT_CMDLINE). */
  cmdline?: string;
  /** Guest RAM: '256M', '1G', or bytes. Default 256M. */
  memory?: Size;
  /** vCPUs (default 1). */
  cpus?: number;
  /** Extra legacy devices: 'com2'…'com4'. */
  devices?: string[];
  /** NICs, one RTL8139 each. */
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
  flat?: {
    /** Guest-physical load address. */ loadAddress?: number;
    /** Entry point (default: the load address). */ entry?: number;
    /** CPU mode at entry (default 'real'). */ mode?: 'real' | 'protected' | 'long';
  };
  /** bzImage entry: '64-bit' or '32-bit' boot protocol (default: 64-bit if the kernel has it). */
  bootProtocol?: '32-bit' | '64-bit';
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
  bootProtocol: MachineOptions['bootProtocol'];
  clearXsave: boolean;
  kvmPath: string;
}

export { parseSize } from '../size.js';

function readInput(v: string | Uint8Array, what: string): { bytes: Uint8Array; name: string } {
  if (v instanceof Uint8Array) return { bytes: v, name: what };
  if (typeof v !== 'string' || v.length === 0) throw new InvalidArgumentError(`${what} must be a path or a Uint8Array`, 'ERR_FILE');
  return { bytes: readUserFile(v, what), name: v.split('/').pop() ?? v };
}

/** Guest RAM size in bytes, checked: at least 16M, whole pages, no more than this host has. */
export function resolveMemory(v: Size): number {
  const memory = parseSize(v);
  if (memory < MIN_MEMORY) throw new InvalidArgumentError(`memory must be at least 16M, got ${memory} bytes`, 'ERR_INVALID_MEMORY');
  if (memory % 4096 !== 0) throw new InvalidArgumentError('memory must be a multiple of 4 KiB', 'ERR_INVALID_MEMORY');
  if (memory > totalmem()) {
    throw new InvalidArgumentError(`memory ${memory} bytes is more than this host has (${totalmem()})`, 'ERR_MEMORY_TOO_LARGE');
  }
  return memory;
}

const MACHINE_OPTIONS = keysOf<MachineOptions>({
  kernel: true, initrd: true, cmdline: true, memory: true, cpus: true, devices: true, net: true, ports: true, shares: true, flat: true, bootProtocol: true, clearXsave: true, kvmPath: true,
});

export function resolveOptions(o: MachineOptions, maxVcpus: number): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('Machine.create needs an options object');
  checkOptions('Machine.create', o, MACHINE_OPTIONS);
  if (o.cmdline !== undefined && typeof o.cmdline !== 'string') throw new InvalidArgumentError('Machine.create: cmdline must be a string');
  if (o.devices !== undefined && !Array.isArray(o.devices)) throw new InvalidArgumentError('Machine.create: devices must be an array such as [\'com2\']', 'ERR_UNKNOWN_DEVICE');
  if (o.net !== undefined && !Array.isArray(o.net)) throw new InvalidArgumentError('Machine.create: net must be an array of { backend }', 'ERR_INVALID_NET');
  if (o.clearXsave !== undefined && typeof o.clearXsave !== 'boolean') throw new InvalidArgumentError('Machine.create: clearXsave must be a boolean');
  if (o.kvmPath !== undefined && (typeof o.kvmPath !== 'string' || o.kvmPath === '')) throw new InvalidArgumentError('Machine.create: kvmPath must be a non-empty string');
  checkOptions('Machine.create: flat', o.flat, keysOf<NonNullable<MachineOptions['flat']>>({ loadAddress: true, entry: true, mode: true }));
  if (o.kernel === undefined) throw new InvalidArgumentError('kernel is required (a path or bytes)', 'ERR_NO_KERNEL');
  const memory = resolveMemory(o.memory ?? '256M');
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
    checkOptions('Machine.create: net entry', n, keysOf<NetOptions>({ backend: true, mac: true, revision: true }));
    if (n.revision !== undefined && n.revision !== 0x10 && n.revision !== 0x20) {
      throw new InvalidArgumentError('net revision must be 0x10 (8139too) or 0x20 (8139cp)', 'ERR_INVALID_NET');
    }
  }
  if (o.bootProtocol !== undefined && o.bootProtocol !== '32-bit' && o.bootProtocol !== '64-bit') {
    throw new InvalidArgumentError(`bootProtocol must be '32-bit' or '64-bit', got ${JSON.stringify(o.bootProtocol)}`);
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
    flat: o.flat, bootProtocol: o.bootProtocol, clearXsave: o.clearXsave ?? process.env.NODE_KVM_LAB === '1', kvmPath: o.kvmPath ?? '/dev/kvm',
  };
}
