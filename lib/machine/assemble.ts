// The steps Machine.create() takes, in order: create the VM and its RAM, wire the platform's
// devices to KVM, load the guest (firmware tables and kernel), create the vCPUs. Each step is
// a function of what the previous ones made, so a reader can follow one at a time; Machine
// owns the result and the lifecycle.
import { writeAcpiTables } from '../boot/acpi/index.js';
import { bootMsrs, buildCpuid, loadKernel, type BootSetup } from '../boot/index.js';
import { writeMpTable } from '../boot/mptable.js';
import { KvmIrqLine } from '../bus/irq.js';
import type { P9Server } from '../devices/virtio/9p/server.js';
import { constants } from '../kvm/constants.js';
import type { Kvm } from '../kvm/kvm.js';
import { yieldSoon, type Vcpu } from '../kvm/vcpu.js';
import type { Vm } from '../kvm/vm.js';
import * as L from '../platform/layout.js';
import { MachineConsole } from './console.js';
import { KvmDoorbell } from './doorbell.js';
import { cachedSupportedCpuid } from './kvm-cache.js';
import type { ResolvedOptions } from './options.js';
import { Platform, type EndReason } from './platform.js';

// LAPIC LVT registers and delivery modes (Intel SDM vol. 3 §11.5.1): LINT0 carries the
// 8259's ExtINT, LINT1 the NMI, as on every PC; KVM's reset value leaves both masked.
const APIC_LVT0 = 0x350;
const APIC_LVT1 = 0x360;
const APIC_MODE_EXTINT = 0x7 << 8;
const APIC_MODE_NMI = 0x4 << 8;

/** A VM with its irqchip, PIT and RAM, before any device exists. */
export interface VmWithRam {
  vm: Vm;
  /** RAM below the PCI hole, and above 4 GiB. */
  below: number;
  above: number;
  /** The RAM regions as the loaders' e820 sees them. */
  ramLayout: Array<{ guestPhysAddr: number; size: number }>;
}

/**
 * Step 1: the VM, the in-kernel irqchip and PIT, and guest RAM (one slot below the PCI hole,
 * then slots of at most MAX_REGION_SIZE above 4 GiB). The caller closes `vm` if a later step fails.
 */
export function createVmWithRam(kvm: Kvm, memory: number): VmWithRam {
  const vm = kvm.createVm();
  try {
    // Both addresses sit in the PCI hole; KVM needs them before the first vCPU exists.
    vm.setIdentityMapAddr(L.IDENTITY_MAP_ADDR);
    vm.setTssAddr(L.TSS_ADDR);
    vm.createIrqchip();
    vm.createPit2(constants.KVM_PIT_SPEAKER_DUMMY!);
    const below = Math.min(memory, L.MMIO_HOLE_START);
    const above = memory - below;
    const ramLayout: Array<{ guestPhysAddr: number; size: number }> = [{ guestPhysAddr: 0, size: below }];
    for (let off = 0; off < above; off += L.MAX_REGION_SIZE) {
      ramLayout.push({ guestPhysAddr: L.FOUR_GIB + off, size: Math.min(L.MAX_REGION_SIZE, above - off) });
    }
    ramLayout.forEach((r, slot) => vm.createMemoryRegion({ slot, ...r }));
    return { vm, below, above, ramLayout };
  } catch (e) {
    vm.close();
    throw e;
  }
}

/** What the platform calls back into once the Machine exists (filled in by Machine). */
export interface MachineLinks {
  /** The guest ended the machine (debug-exit, poweroff, reset, a device's fatal error). */
  end?(reason: EndReason, code: number, detail?: string): void;
  /** Apply the writes KVM holds in the coalesced ring now (a BAR is about to move). */
  drainCoalesced?(): void;
}

/**
 * Step 2: the platform's devices on the PIO/MMIO buses, wired to KVM: IRQ lines, MSI, ioeventfd
 * doorbells, coalesced writes, and the run loop's wake-ups for deferred device work. Returns the
 * platform and the console (COM1's host side).
 */
export function wirePlatform(vm: Vm, o: ResolvedOptions, r: VmWithRam, shares: P9Server[], links: MachineLinks): { platform: Platform; console: MachineConsole } {
  // Devices declare the registers whose writes KVM may queue instead of exiting on
  // (BusDevice.coalescedWrites: the UART's THR, the PCI CONFIG_ADDRESS, the RTL8139's BAR
  // registers); they are registered below, once the devices are on the buses. A write left
  // queued by a guest that then halts is applied at the next kick (Machine.start(): the run
  // loop drains on 'interrupted').
  const coalescedPio = vm.checkExtension(constants.KVM_CAP_COALESCED_PIO!) > 0;
  const coalescedMmio = vm.checkExtension(constants.KVM_CAP_COALESCED_MMIO!) > 0;
  const irqs = new Map<number, KvmIrqLine>();
  let console: MachineConsole | undefined;
  const platform = new Platform(
    { memory: vm.memory, memoryBelow4g: r.below, memoryAbove4g: r.above, cpus: o.cpus, comPorts: o.comPorts, net: o.net, ports: o.ports, shares },
    {
      irq: (gsi) => {
        let l = irqs.get(gsi);
        if (l === undefined) irqs.set(gsi, (l = new KvmIrqLine(vm, gsi)));
        return l;
      },
      end: (reason, code, detail) => links.end?.(reason, code, detail),
      // The flush is a setImmediate: make the run loop yield for it within 1 ms, or an idle
      // guest's output would wait for an unrelated event.
      consoleByte: (b) => { if (console?.guestByte(b) === true) yieldSoon(1); },
      consoleRxSpace: () => console?.rxSpace(),
      // A device's leftover work (a long transmit) runs on the next turn: make the run loop
      // yield for it within 1 ms even while the guest spins without exits.
      deferWork: (cb) => {
        const h = setImmediate(cb);
        yieldSoon(1);
        return () => clearImmediate(h);
      },
      ...(vm.checkExtension(constants.KVM_CAP_SIGNAL_MSI!) > 0 ? { msi: { signalMsi: (a: bigint, d: number) => { vm.signalMsi(a, d); } } } : {}),
      ...(vm.checkExtension(constants.KVM_CAP_IOEVENTFD!) > 0 ? { doorbell: (onRing: () => void) => new KvmDoorbell(vm, onRing) } : {}),
      wake: () => yieldSoon(1),
      // Device registers whose writes may be queued (PCI BARs declare them, see the RTL8139).
      // A BAR that moves or stops decoding first gets what the ring holds for it applied.
      coalesce: (kind, addr, size, on) => {
        const pio = kind === 'io';
        if (!(pio ? coalescedPio : coalescedMmio)) return;
        if (on) vm.registerCoalesced({ addr, size, pio });
        else {
          links.drainCoalesced?.();
          vm.unregisterCoalesced({ addr, size, pio });
        }
      },
    },
  );
  try {
    for (const [bus, pio, on] of [[platform.pio, true, coalescedPio], [platform.mmio, false, coalescedMmio]] as const) {
      if (!on) continue;
      for (const reg of bus.devices) {
        for (const z of reg.device.coalescedWrites ?? []) vm.registerCoalesced({ addr: reg.base + z.offset, size: z.size, pio });
      }
    }
  } catch (e) {
    platform.close();
    throw e;
  }
  console = new MachineConsole((bytes) => platform.consoleInput(bytes));
  return { platform, console };
}

/**
 * Step 3: what the guest finds in RAM at entry: ACPI and MP tables, the kernel (and initrd,
 * command line, boot parameters), and the e820 map for fw_cfg. With `forRestore` (the shell a
 * snapshot is restored into) the tables are skipped: the snapshot's RAM replaces them.
 */
export function loadGuest(vm: Vm, platform: Platform, o: ResolvedOptions, ramLayout: VmWithRam['ramLayout'], forRestore: boolean): BootSetup {
  const pciSlots = platform.pciSlots();
  const pciIrqs = pciSlots.map((slot) => ({ slot, pin: 1, gsi: L.pciIntxGsi(slot, 1) }));
  // The (flat) stand-in kernel of a restore needs no RSDP.
  const acpi = forRestore ? undefined : writeAcpiTables(vm.memory, { cpus: o.cpus, pciDevices: pciSlots });
  if (!forRestore) writeMpTable(vm.memory, { cpus: o.cpus, pciIrqs });
  // Loaded even for a restore: its e820 goes to fw-cfg, which the snapshot does not carry.
  const boot = loadKernel(o.kernel, {
    memory: vm.memory, ramLayout, cmdline: o.cmdline, initrd: o.initrd, kernelName: o.kernelName,
    ...(acpi !== undefined ? { rsdpAddress: acpi.rsdpAddress } : {}),
    ...(o.bootProtocol !== undefined ? { bootProtocol: o.bootProtocol } : {}),
    ...(o.flat ? { format: 'flat' as const, flatLoadAddress: o.flat.loadAddress, flatEntry: o.flat.entry, flatMode: o.flat.mode } : {}),
  });
  platform.setE820(boot.e820);
  return boot;
}

/**
 * Step 4: the vCPUs with their CPUID and MSRs; the LAPIC's LINT0/LINT1 wired as on a PC and
 * vCPU 0 at the kernel's entry (both skipped for a restore, whose state replaces them).
 */
export function createVcpus(kvm: Kvm, vm: Vm, o: ResolvedOptions, boot: BootSetup, forRestore: boolean): Vcpu[] {
  const supported = cachedSupportedCpuid(kvm);
  const vcpus: Vcpu[] = [];
  for (let id = 0; id < o.cpus; id++) {
    const v = vm.createVcpu(id);
    vcpus.push(v);
    v.setCpuid2(buildCpuid(supported, { vcpuId: id, cpus: o.cpus, clearXsave: o.clearXsave }));
    v.setMsrs(bootMsrs());
    if (forRestore) continue;
    const lapic = v.getLapic();
    const dv = new DataView(lapic.buffer, lapic.byteOffset, lapic.byteLength);
    dv.setUint32(APIC_LVT0, (dv.getUint32(APIC_LVT0, true) & ~0x10700) | APIC_MODE_EXTINT, true);
    dv.setUint32(APIC_LVT1, (dv.getUint32(APIC_LVT1, true) & ~0x10700) | APIC_MODE_NMI, true);
    v.setLapic(lapic);
  }
  if (!forRestore) {
    vcpus[0]!.setSregs(boot.sregs);
    vcpus[0]!.setRegs(boot.regs);
  }
  return vcpus;
}
