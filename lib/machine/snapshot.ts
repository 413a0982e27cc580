// Machine snapshots: every vCPU's architectural state, the in-kernel irqchip/PIT/kvmclock, the
// device model and guest RAM, captured from a paused machine and put back into the same
// machine (restore) or a new one (Machine.fromSnapshot). A snapshot's RAM lives in a memfd
// (snapshot-memfd.ts) or in a file (snapshot-file.ts); either is mapped copy-on-write over the
// RAM slots, so a restore costs page faults for the pages the guest touches, not a copy of all
// of RAM.
import { NodeKvmError } from '../errors.js';
import type { Kvm } from '../kvm/kvm.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { Vm } from '../kvm/vm.js';
import { native } from '../native.js';
import type { AcpiPmState } from '../devices/acpi-pm.js';
import type { CmosState } from '../devices/cmos.js';
import { Cmos } from '../devices/cmos.js';
import type { FwCfgState } from '../devices/fw-cfg.js';
import { I8042, type I8042State } from '../devices/i8042.js';
import type { PciHostBridgeState } from '../devices/pci/host-bridge.js';
import type { PciDeviceState } from '../devices/pci/device.js';
import type { Uart16550State } from '../devices/uart16550.js';
import type { MachineConsole } from './console.js';
import type { Platform } from './platform.js';
import { MemfdRam } from './snapshot-memfd.js';
import { phaseTimer } from './snapshot-trace.js';
import { SnapshotFile, writeSnapshotFile, type JsonValue, type SectionInput, type VerifyLevel } from './snapshot-file.js';

export { SnapshotFileError, SNAPSHOT_FORMAT_VERSION } from './snapshot-file.js';

/** KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC (struct kvm_irqchip.chip_id). */
const IRQCHIP_IDS = [0, 1, 2] as const;
/** struct kvm_clock_data.flags: cleared on restore so the clock resumes at the saved value. */
const CLOCK_FLAGS_OFFSET = 8;
/** KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR: GET does not set them. */
const VCPUEVENT_RESTORE_FLAGS = 0x1 | 0x2;

/** What a snapshot needs to rebuild an identical machine. */
export interface SnapshotConfig {
  memory: number;
  cpus: number;
  comPorts: number;
  clearXsave: boolean;
  ram: Array<{ slot: number; guestPhysAddr: number; size: number }>;
  nics: Array<{ mac: string; revision: number }>;
  /** virtio-console port names (absent in snapshots from before ports existed). */
  ports?: string[];
  tscKhz: number | null;
}

/** One vCPU. Binary structs are base64; MSR values are hex strings. */
export interface VcpuState {
  id: number;
  regs: string;
  sregs: string;
  /** KVM_GET_XSAVE, or null where KVM refuses it (kvm_pvm): then `fpu` carries the FPU/SSE state. */
  xsave: string | null;
  fpu: string;
  xcrs: string | null;
  msrs: Array<[number, string]>;
  lapic: string;
  events: string;
  mpState: number;
}

export interface DeviceStates {
  uarts: Uart16550State[];
  i8042: I8042State | null;
  cmos: CmosState | null;
  acpiPm: AcpiPmState;
  fwCfg: FwCfgState;
  pciHost: PciHostBridgeState;
  pci: Array<{ slot: number; state: PciDeviceState }>;
}

export interface MachineStateData {
  vcpus: VcpuState[];
  irqchip: string[];
  pit: string;
  clock: string;
  devices: DeviceStates;
  /** Console bytes the guest had printed when the snapshot was taken (host side, informative). */
  consoleBytes: number;
}

/** The parts of a Machine a snapshot reads and writes (Machine passes itself in). */
export interface SnapshotTarget {
  kvm: Kvm;
  vm: Vm;
  vcpus: readonly Vcpu[];
  platform: Platform;
  console: MachineConsole;
  config: SnapshotConfig;
}

type Memory =
  | { kind: 'memfd'; ram: MemfdRam }
  /** Where the kernel has no memfd_create: a JS copy, copied back on restore. */
  | { kind: 'copy'; regions: Uint8Array[] }
  | { kind: 'file'; file: SnapshotFile };

const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** A captured machine. Hold it in memory, save() it, and restore it any number of times. */
export class MachineSnapshot {
  private closed = false;

  /** @internal use machine.snapshot() or loadSnapshot() */
  constructor(readonly config: SnapshotConfig, readonly state: MachineStateData, private readonly memory: Memory) {}

  /** The file this snapshot was loaded from, if any. */
  get path(): string | undefined {
    return this.memory.kind === 'file' ? this.memory.file.path : undefined;
  }

  /** RAM bytes held by this snapshot (in memory or in its file). */
  get memoryBytes(): number {
    return this.config.ram.reduce((n, r) => n + r.size, 0);
  }

  /** @internal throws ERR_SNAPSHOT_CLOSED once close() was called */
  ensureOpen(): void {
    if (this.closed) throw new NodeKvmError('ERR_SNAPSHOT_CLOSED', 'snapshot is closed');
  }

  /** Write to `path` (atomically: a temporary file renamed into place). */
  save(path: string): void {
    this.ensureOpen();
    const stateJson = new TextEncoder().encode(JSON.stringify({ config: this.config, state: this.state }));
    const sections: SectionInput[] = [{ name: 'state', kind: 'state', data: stateJson }];
    this.config.ram.forEach((r, i) => {
      sections.push({ name: `memory:${r.slot}`, kind: 'memory', data: this.regionBytes(i) });
    });
    writeSnapshotFile(path, { kind: 'node-kvm machine', config: this.config as unknown as JsonValue }, sections);
  }

  /**
   * The bytes of RAM region `i`: read from the file when the snapshot lives there; for an
   * in-memory snapshot a view valid until close(), whose writes do not change the snapshot.
   */
  regionBytes(i: number): Uint8Array {
    this.ensureOpen();
    const r = this.config.ram[i]!;
    switch (this.memory.kind) {
      case 'memfd': return this.memory.ram.view(i);
      case 'copy': return this.memory.regions[i]!;
      case 'file': return this.memory.file.read(`memory:${r.slot}`);
    }
  }

  /**
   * A copy-on-write mapping of RAM region `i` (MAP_PRIVATE over the memfd or the file: the
   * guest's writes never reach the snapshot), or undefined for a snapshot held as a JS copy.
   * The caller owns the mapping.
   */
  mapRegionPrivate(i: number): ArrayBuffer | undefined {
    const src = this.privateSource(i);
    return src === undefined ? undefined : native().mmapFilePrivate(src.fd, this.config.ram[i]!.size, src.offset);
  }

  /**
   * @internal Where RAM region `i` can be mapped copy-on-write from (the memfd or the file and the
   * offset in it), or undefined for a snapshot held as a JS copy.
   */
  privateSource(i: number): { fd: number; offset: number } | undefined {
    this.ensureOpen();
    const r = this.config.ram[i]!;
    switch (this.memory.kind) {
      case 'memfd': return this.memory.ram.source(i);
      case 'copy': return undefined;
      case 'file': return { fd: this.memory.file.fd, offset: this.memory.file.section(`memory:${r.slot}`).offset };
    }
  }

  /** Copy RAM region `i` into `target`. */
  copyRegionInto(i: number, target: Uint8Array): void {
    this.ensureOpen();
    const r = this.config.ram[i]!;
    if (this.memory.kind === 'file') this.memory.file.readInto(`memory:${r.slot}`, target);
    else target.set(this.regionBytes(i));
  }

  /** Release the memory (memfd, copy) or the file descriptor. Machines restored from it run on. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.memory.kind === 'file') this.memory.file.close();
    else if (this.memory.kind === 'memfd') this.memory.ram.close();
    else this.memory.regions.length = 0;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Open a snapshot file. `verify`: 'full' (default) checks every section's sha256, 'state'
 * skips hashing RAM (sizes and bounds are still checked). Refuses a bad file with
 * ERR_SNAPSHOT_CORRUPT or ERR_SNAPSHOT_VERSION.
 */
export function loadSnapshot(path: string, opts: { verify?: VerifyLevel } = {}): MachineSnapshot {
  const file = SnapshotFile.open(path, opts);
  try {
    let parsed: { config?: SnapshotConfig; state?: MachineStateData };
    try {
      parsed = JSON.parse(new TextDecoder().decode(file.read('state'))) as typeof parsed;
    } catch {
      throw new NodeKvmError('ERR_SNAPSHOT_CORRUPT', `snapshot ${path}: state section is not JSON`);
    }
    const { config, state } = parsed;
    if (config === undefined || state === undefined || !Array.isArray(config.ram) || !Array.isArray(state.vcpus)) {
      throw new NodeKvmError('ERR_SNAPSHOT_CORRUPT', `snapshot ${path}: state section lacks config/state`);
    }
    for (const r of config.ram) {
      const s = file.section(`memory:${r.slot}`);
      if (s.length !== r.size) throw new NodeKvmError('ERR_SNAPSHOT_CORRUPT', `snapshot ${path}: memory:${r.slot} is ${s.length} bytes, RAM ${r.size}`);
    }
    return new MachineSnapshot(config, state, { kind: 'file', file });
  } catch (e) {
    file.close();
    throw e;
  }
}

// ---------------------------------------------------------------- capture

/** MSRs this vCPU lets us read: KVM_GET_MSRS stops at the first it refuses, so drop and retry. */
function readableMsrs(vcpu: Vcpu, candidates: readonly number[]): Array<{ index: number; data: bigint }> {
  let list = [...candidates];
  for (;;) {
    const got = vcpu.getMsrs(list);
    if (got.length === list.length) return got;
    list = [...list.slice(0, got.length), ...list.slice(got.length + 1)];
  }
}

function captureVcpu(vcpu: Vcpu, msrIndices: readonly number[]): VcpuState {
  const n = native();
  const fd = vcpu.fd;
  let xsave: string | null = null;
  try {
    xsave = b64(n.getXsave(fd));
  } catch {
    xsave = null; // kvm_pvm refuses KVM_GET_XSAVE: the FPU state below carries x87/SSE
  }
  let xcrs: string | null = null;
  try {
    xcrs = b64(n.getXcrs(fd));
  } catch {
    xcrs = null;
  }
  return {
    id: vcpu.id,
    regs: b64(n.getRegs(fd)),
    sregs: b64(n.getSregs(fd)),
    xsave,
    fpu: b64(n.getFpu(fd)),
    xcrs,
    msrs: readableMsrs(vcpu, msrIndices).map((m) => [m.index, m.data.toString(16)]),
    lapic: b64(n.getLapic(fd)),
    events: b64(n.getVcpuEvents(fd)),
    mpState: n.getMpState(fd),
  };
}

/** The platform's devices that the Platform class keeps only on the bus (i8042, CMOS). */
function busDevice<T>(platform: Platform, cls: abstract new (...a: never[]) => T): T | undefined {
  for (const r of platform.pio.devices) if (r.device instanceof cls) return r.device as T;
  return undefined;
}

function captureDevices(p: Platform): DeviceStates {
  return {
    uarts: p.uarts.map((u) => u.saveState()),
    i8042: busDevice(p, I8042)?.saveState() ?? null,
    cmos: busDevice(p, Cmos)?.saveState() ?? null,
    acpiPm: p.acpiPm.saveState(),
    fwCfg: p.fwCfg.saveState(),
    pciHost: p.pci.saveState(),
    pci: p.pci.devices().map(([slot, d]) => ({ slot, state: d.saveState() })),
  };
}

/**
 * Finish what the last exit left pending (an I/O read's data lands in RAX, an MMIO read's in its
 * register only on the next KVM_RUN): enter each vCPU once with immediate_exit set, which
 * completes the operation and returns before any further guest instruction (KVM API, KVM_RUN).
 */
function settle(vcpus: readonly Vcpu[]): void {
  for (const v of vcpus) {
    v.kick();
    const e = v.run();
    if (e.reason !== 'interrupted') {
      throw new NodeKvmError('ERR_SNAPSHOT_STATE', `vCPU ${v.id} did not settle before the snapshot (exit ${e.reason})`);
    }
  }
}

/** Capture `t` (which must not be running). RAM is copied into a memfd. */
export function captureSnapshot(t: SnapshotTarget): MachineSnapshot {
  const ph = phaseTimer('capture');
  const n = native();
  const vmfd = t.vm.fd;
  const msrIndices = t.kvm.getMsrIndexList();
  settle(t.vcpus);
  t.console.flush();
  ph.mark('settle');
  const state: MachineStateData = {
    vcpus: t.vcpus.map((v) => captureVcpu(v, msrIndices)),
    irqchip: IRQCHIP_IDS.map((id) => b64(n.getIrqchip(vmfd, id))),
    pit: b64(n.getPit2(vmfd)),
    clock: b64(n.getClock(vmfd)),
    devices: captureDevices(t.platform),
    consoleBytes: t.console.output.length,
  };
  ph.mark('state');
  const views = t.config.ram.map((r) => t.vm.memory.view(r.guestPhysAddr, r.size));
  const ram = MemfdRam.capture(views);
  const memory: Memory = ram !== undefined ? { kind: 'memfd', ram } : { kind: 'copy', regions: views.map((v) => v.slice()) };
  ph.mark('ram');
  ph.done();
  return new MachineSnapshot(structuredClone(t.config), state, memory);
}

// ---------------------------------------------------------------- restore

/** KVM_SET_MSRS stops at the first MSR it refuses: skip that one and go on. Returns the refused. */
function writeMsrs(vcpu: Vcpu, entries: Array<{ index: number; data: bigint }>): number[] {
  const refused: number[] = [];
  let rest = entries;
  while (rest.length > 0) {
    const done = vcpu.setMsrs(rest);
    if (done >= rest.length) break;
    refused.push(rest[done]!.index);
    rest = rest.slice(done + 1);
  }
  return refused;
}

function restoreVcpu(vcpu: Vcpu, s: VcpuState): void {
  const n = native();
  const fd = vcpu.fd;
  n.setSregs(fd, unb64(s.sregs));
  n.setRegs(fd, unb64(s.regs));
  if (s.xcrs !== null) n.setXcrs(fd, unb64(s.xcrs));
  if (s.xsave !== null) n.setXsave(fd, unb64(s.xsave));
  else n.setFpu(fd, unb64(s.fpu));
  writeMsrs(vcpu, s.msrs.map(([index, hex]) => ({ index, data: BigInt(`0x${hex}`) })));
  n.setLapic(fd, unb64(s.lapic));
  n.setMpState(fd, s.mpState);
  const ev = unb64(s.events);
  const flagsOff = n.layout.kvm_vcpu_events.flags!;
  const dv = new DataView(ev.buffer, ev.byteOffset, ev.byteLength);
  dv.setUint32(flagsOff, dv.getUint32(flagsOff, true) | VCPUEVENT_RESTORE_FLAGS, true);
  n.setVcpuEvents(fd, ev);
}

function restoreDevices(p: Platform, d: DeviceStates): void {
  d.uarts.forEach((s, i) => p.uarts[i]?.loadState(s));
  if (d.i8042 !== null) busDevice(p, I8042)?.loadState(d.i8042);
  if (d.cmos !== null) busDevice(p, Cmos)?.loadState(d.cmos);
  p.acpiPm.loadState(d.acpiPm);
  p.fwCfg.loadState(d.fwCfg);
  p.pci.loadState(d.pciHost);
  for (const { slot, state } of d.pci) p.pci.device(slot)?.loadState(state);
}

function checkCompatible(t: SnapshotTarget, snap: MachineSnapshot): void {
  const a = t.config;
  const b = snap.config;
  const same = a.cpus === b.cpus && a.memory === b.memory && a.comPorts === b.comPorts && a.nics.length === b.nics.length
    && a.ram.length === b.ram.length && a.ram.every((r, i) => r.guestPhysAddr === b.ram[i]!.guestPhysAddr && r.size === b.ram[i]!.size)
    && (a.ports ?? []).join('\0') === (b.ports ?? []).join('\0');
  if (!same) {
    throw new NodeKvmError('ERR_SNAPSHOT_MISMATCH',
      `snapshot is of a machine with ${b.cpus} vCPU(s), ${b.memory} bytes RAM, ${b.comPorts} COM port(s), ${b.nics.length} NIC(s), ports [${b.ports ?? []}]; `
      + `this one has ${a.cpus}, ${a.memory}, ${a.comPorts}, ${a.nics.length}, [${a.ports ?? []}]`);
  }
}

export interface RestoreOptions {
  /**
   * How RAM comes back. 'auto' (default): the snapshot's memory (its memfd or its file) is
   * mapped copy-on-write in place of the current RAM's pages (same slots and addresses:
   * `region.bytes` views stay valid and show the restored RAM). 'copy' copies into the current
   * RAM instead.
   */
  memory?: 'auto' | 'copy';
}

/** Put `snap` back into `t` (not running). Devices first, then the irqchip, then the vCPUs. */
export function restoreSnapshot(t: SnapshotTarget, snap: MachineSnapshot, opts: RestoreOptions = {}): void {
  snap.ensureOpen(); // before anything in the machine changes
  checkCompatible(t, snap);
  const ph = phaseTimer('restore');
  settle(t.vcpus);
  ph.mark('settle');
  const n = native();
  snap.config.ram.forEach((r, i) => {
    const src = opts.memory === 'copy' ? undefined : snap.privateSource(i);
    if (src === undefined) snap.copyRegionInto(i, t.vm.memory.view(r.guestPhysAddr, r.size));
    else t.vm.mapFilePrivateOver(r.slot, src.fd, src.offset);
  });
  ph.mark('ram');
  const s = snap.state;
  // Devices re-assert their IRQ lines from the restored registers (keeping KVM's per-source line
  // levels in step), then the irqchip state overwrites whatever that delivered.
  restoreDevices(t.platform, s.devices);
  ph.mark('devices');
  const vmfd = t.vm.fd;
  s.irqchip.forEach((c) => n.setIrqchip(vmfd, unb64(c)));
  n.setPit2(vmfd, unb64(s.pit));
  const clock = unb64(s.clock);
  new DataView(clock.buffer, clock.byteOffset, clock.byteLength).setUint32(CLOCK_FLAGS_OFFSET, 0, true);
  n.setClock(vmfd, clock);
  ph.mark('irqchip+pit+clock');
  s.vcpus.forEach((vs, i) => restoreVcpu(t.vcpus[i]!, vs));
  ph.mark('vcpus');
  // waitFor() looks only at output printed after the restore.
  t.console.flush();
  void t.console.waitFor(/$/, { timeout: 1 }).catch(() => undefined);
  ph.done();
}
