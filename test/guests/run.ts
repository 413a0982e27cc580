// Helpers that put a test guest (test/guests/*.S) into a fresh VM: RAM at GPA 0, the flat
// image at GUEST_LOAD_ADDR, CPUID from KVM_GET_SUPPORTED_CPUID (long mode needs the LM bit for
// EFER.LME), the vCPU in real mode at CS:IP = 0:GUEST_LOAD_ADDR, and PIO/MMIO buses with
// small recording devices for the guests' I/O contract.
import { Kvm } from '../../lib/index.js';
import type { Vm, Vcpu, VcpuExit, Regs, CpuidEntry } from '../../lib/index.js';
import { PioBus, MmioBus } from '../../lib/bus/bus.js';
import type { BusDevice } from '../../lib/bus/device.js';
import { TSS_ADDR } from '../../lib/platform/layout.js';
import { buildGuest, GUEST_LOAD_ADDR, PORT, PORT_WINDOW, type GuestName } from './build.js';

/** RAM below the VGA hole, so 0xa0000 is an MMIO address for real-mode guests. */
export const DEFAULT_RAM = 0xa0000;

export interface GuestVmOptions {
  guest: GuestName;
  /** Bytes of RAM at GPA 0 (page multiple). Default DEFAULT_RAM. */
  ramSize?: number;
  /** In-kernel PIC/IOAPIC/LAPIC and PIT. */
  irqchip?: boolean;
  /** Number of vCPUs (ids 0..n-1); vCPU 0 boots the guest, the others wait for a SIPI. */
  vcpus?: number;
  /** Extra registers for the boot vCPU (the exit-loop guest takes rcx/rbx). */
  regs?: Partial<Regs>;
  logDirtyPages?: boolean;
  /** Reuse an open Kvm handle (not closed by GuestVm.close()). */
  kvm?: Kvm;
}

export interface GuestVm extends Disposable {
  readonly kvm: Kvm;
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly vcpus: readonly Vcpu[];
  readonly pio: PioBus;
  readonly mmio: MmioBus;
  readonly ram: Uint8Array;
  /** Memory slot of the RAM region. */
  readonly slot: number;
  close(): void;
}

/** CPUID for vCPU `id`: the host-supported leaves with the initial APIC id patched in. */
export function cpuidFor(supported: readonly CpuidEntry[], id: number): CpuidEntry[] {
  return supported.map((e) => {
    if (e.function === 1) return { ...e, ebx: ((e.ebx & 0x00ffffff) | (id << 24)) >>> 0 };
    if (e.function === 0xb || e.function === 0x1f) return { ...e, edx: id };
    return { ...e };
  });
}

/** Real mode, flat segments at base 0, IP = SP = GUEST_LOAD_ADDR. */
export function enterRealMode(vcpu: Vcpu, extra: Partial<Regs> = {}): void {
  const seg = { base: 0n, selector: 0 };
  vcpu.setSregs({ cs: seg, ds: seg, es: seg, ss: seg, fs: seg, gs: seg });
  vcpu.setRegs({
    rip: BigInt(GUEST_LOAD_ADDR), rsp: BigInt(GUEST_LOAD_ADDR), rflags: 2n,
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rbp: 0n,
    ...extra,
  });
}

export function createGuestVm(opts: GuestVmOptions): GuestVm {
  const ownKvm = opts.kvm === undefined;
  const kvm = opts.kvm ?? Kvm.open();
  try {
    const vm = kvm.createVm();
    try {
      vm.setTssAddr(TSS_ADDR);
      if (opts.irqchip === true) {
        vm.createIrqchip();
        vm.createPit2();
      }
      const ramSize = opts.ramSize ?? DEFAULT_RAM;
      const region = vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: ramSize, logDirtyPages: opts.logDirtyPages === true });
      region.bytes.set(buildGuest(opts.guest), GUEST_LOAD_ADDR);
      const supported = kvm.getSupportedCpuid();
      const vcpus: Vcpu[] = [];
      for (let id = 0; id < (opts.vcpus ?? 1); id++) {
        const vcpu = vm.createVcpu(id);
        vcpu.setCpuid2(cpuidFor(supported, id));
        vcpus.push(vcpu);
      }
      const vcpu = vcpus[0]!;
      enterRealMode(vcpu, opts.regs);
      const pio = new PioBus();
      const mmio = new MmioBus();
      const close = (): void => {
        for (const v of vcpus) v.close();
        vm.close();
        if (ownKvm) kvm.close();
      };
      return { kvm, vm, vcpu, vcpus, pio, mmio, ram: region.bytes, slot: 0, close, [Symbol.dispose]: close };
    } catch (e) {
      vm.close();
      throw e;
    }
  } catch (e) {
    if (ownKvm) kvm.close();
    throw e;
  }
}

/** Put `device` on the guest-contract port `name`, with the window width that port needs. */
export function attach<D extends BusDevice>(g: GuestVm, name: keyof typeof PORT, device: D): D {
  g.pio.register(PORT[name], PORT_WINDOW[name], device, name);
  return device;
}

/** A port/MMIO window that records every write and answers reads from a queue (then `fill`). */
export class Recorder implements BusDevice {
  readonly writes: { offset: number; size: number; value: number }[] = [];
  readonly reads: { offset: number; size: number }[] = [];
  private readonly queue: number[] = [];
  constructor(private readonly fill = 0) {}
  feed(...values: number[]): this {
    this.queue.push(...values);
    return this;
  }
  read(offset: number, size: number): number {
    this.reads.push({ offset, size });
    return this.queue.length > 0 ? this.queue.shift()! : this.fill;
  }
  write(offset: number, size: number, value: number): void {
    this.writes.push({ offset, size, value });
  }
  /** The written bytes as text (for 1-byte consoles). */
  text(): string {
    return String.fromCharCode(...this.writes.map((w) => w.value & 0xff));
  }
  values(): number[] {
    return this.writes.map((w) => w.value);
  }
}

export class GuestExitError extends Error {
  constructor(message: string, readonly exit: VcpuExit) {
    super(message);
  }
}

function describe(vcpu: Vcpu, exit: VcpuExit): string {
  let where = '';
  try {
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    where = ` at rip=0x${r.rip.toString(16)} cs.base=0x${s.cs.base.toString(16)} cr0=0x${s.cr0.toString(16)}`;
  } catch {
    where = '';
  }
  return `unexpected exit ${JSON.stringify(exit, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v instanceof Uint8Array ? Array.from(v) : v))}${where}`;
}

/**
 * Run the boot vCPU synchronously, dispatching PIO and MMIO exits to the buses, until
 * `stop(exit)` says so or the guest halts (without irqchip a HLT exits to userspace).
 * Failure exits (shutdown, internal-error, fail-entry, …) throw with the vCPU state.
 * `maxExits` bounds a runaway guest.
 */
export function runSync(g: GuestVm, stop: (exit: VcpuExit) => boolean = () => false, maxExits = 100_000): VcpuExit {
  for (let n = 0; n < maxExits; n++) {
    const exit = g.vcpu.run();
    if (exit.reason === 'io') g.pio.handleIo(exit);
    else if (exit.reason === 'mmio') g.mmio.handleMmio(exit);
    else if (exit.reason === 'interrupted') continue;
    else if (exit.reason !== 'hlt') throw new GuestExitError(describe(g.vcpu, exit), exit);
    if (stop(exit) || exit.reason === 'hlt') return exit;
  }
  throw new Error(`guest did not stop within ${maxExits} exits`);
}

/**
 * The same through `vcpu.runLoop` (keeps the event loop alive; required when the guest waits
 * in an in-kernel HLT). Resolves with the exit `stop` accepted.
 */
export async function runAsync(g: GuestVm, stop: (exit: VcpuExit) => boolean, signal?: AbortSignal): Promise<VcpuExit | undefined> {
  let last: VcpuExit | undefined;
  let failure: Error | undefined;
  await g.vcpu.runLoop((exit) => {
    if (exit.reason === 'io') g.pio.handleIo(exit);
    else if (exit.reason === 'mmio') g.mmio.handleMmio(exit);
    else if (exit.reason !== 'hlt') {
      failure = new GuestExitError(describe(g.vcpu, exit), exit);
      return 'stop';
    }
    if (stop(exit)) {
      last = exit;
      return 'stop';
    }
    return undefined;
  }, signal === undefined ? {} : { signal });
  if (failure !== undefined) throw failure;
  return last;
}
