// Machine snapshots: every vCPU's architectural state, the in-kernel irqchip/PIT/kvmclock, the
// device model and guest RAM, captured from a paused machine and put back into the same
// machine (restore) or a new one (Machine.fromSnapshot). A snapshot's RAM lives in a memfd
// (lib/kvm/memfd-ram.ts) or in a file (snapshot-file.ts); either is mapped copy-on-write over the
// RAM slots, so a restore costs page faults for the pages the guest touches, not a copy of all
// of RAM.
import { NodeKvmError } from '../errors.js';
import type { Kvm } from '../kvm/kvm.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { VcpuState as KvmVcpuState, VmState } from '../kvm/state.js';
import type { Vm } from '../kvm/vm.js';
import { mapFilePrivate } from '../kvm/host-memory.js';
import type { AcpiPmState } from '../devices/acpi-pm.js';
import type { CmosState } from '../devices/cmos.js';
import type { FwCfgState } from '../devices/fw-cfg.js';
import type { I8042State } from '../devices/i8042.js';
import type { PciHostBridgeState } from '../devices/pci/host-bridge.js';
import type { PciDeviceState } from '../devices/pci/device.js';
import type { Uart16550State } from '../devices/uart16550.js';
import type { MachineConsole } from './console.js';
import type { Platform } from './platform.js';
import { MemfdRam } from '../kvm/memfd-ram.js';
import { phaseTimer } from '../snapshot-trace.js';
import { SnapshotFile, writeSnapshotFile, type JsonValue, type SectionInput, type VerifyLevel } from './snapshot-file.js';
import { checkOptions, keysOf } from '../options-check.js';

export { SnapshotFileError, SNAPSHOT_FORMAT_VERSION } from './snapshot-file.js';


/** What a snapshot needs to rebuild an identical machine. */
export interface SnapshotConfig {
  /** Guest RAM in bytes. */
  memory: number;
  /** vCPUs. */
  cpus: number;
  /** COM ports (1-4). */
  comPorts: number;
  /** Whether CPUID XSAVE was hidden from the guest. */
  clearXsave: boolean;
  /** The RAM slots, as KVM had them. */
  ram: Array<{
    /** KVM slot. */ slot: number;
    /** Guest-physical address. */ guestPhysAddr: number;
    /** Bytes. */ size: number;
  }>;
  /** The NICs, in PCI order. */
  nics: Array<{
    /** Station address. */ mac: string;
    /** PCI revision (0x10 or 0x20). */ revision: number;
  }>;
  /** The shares (virtio-9p) in PCI order; absent in snapshots of machines without them. */
  shares?: Array<{
    /** Mount tag. */ tag: string;
    /** Host directory exported. */ path: string;
    /** Whether changes were refused. */ readonly: boolean;
  }>;
  /** virtio-console port names (absent in snapshots from before ports existed). */
  ports?: string[];
  /** The guest's TSC rate in kHz, restored where KVM can set it; null where it cannot read it. */
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
const encodeVm = (v: VmState): Pick<MachineStateData, 'irqchip' | 'pit' | 'clock'> => ({ irqchip: v.irqchip.map(b64), pit: b64(v.pit), clock: b64(v.clock) });

/** A captured machine. Hold it in memory, save() it, and restore it any number of times. */
export class MachineSnapshot {
  private closed = false;

  /** The shape of the machine captured: a restore needs one that matches. */
  readonly config: SnapshotConfig;
  /** @internal vCPU, irqchip and device state as captured */
  readonly state: MachineStateData;

  /** @internal use machine.snapshot() or loadSnapshot() */
  constructor(config: SnapshotConfig, state: MachineStateData, private readonly memory: Memory) {
    this.config = config;
    this.state = state;
  }

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

  /**
   * Write to `path` (atomically: a temporary file renamed into place). `extra` is stored in the
   * file's header beside the machine's config (what a caller needs to check before a restore,
   * e.g. which kernel the guest runs); read it back with {@link MachineSnapshot.fileMeta}.
   */
  save(path: string, extra?: Record<string, unknown>): void {
    this.ensureOpen();
    const stateJson = new TextEncoder().encode(JSON.stringify({ config: this.config, state: this.state }));
    const sections: SectionInput[] = [{ name: 'state', kind: 'state', data: stateJson }];
    this.config.ram.forEach((r, i) => {
      sections.push({ name: `memory:${r.slot}`, kind: 'memory', data: this.regionBytes(i) });
    });
    writeSnapshotFile(path, { ...(extra as Record<string, JsonValue> | undefined), kind: 'node-kvm machine', config: this.config as unknown as JsonValue }, sections);
  }

  /** The header metadata (parsed JSON) of the file this snapshot was loaded from; undefined when held in memory. */
  get fileMeta(): unknown {
    return this.memory.kind === 'file' ? this.memory.file.meta : undefined;
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
    return src === undefined ? undefined : mapFilePrivate(src.fd, this.config.ram[i]!.size, src.offset);
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

  /** Same as close(), for `using`. */
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
  checkOptions('loadSnapshot', opts, keysOf<{ verify?: VerifyLevel }>({ verify: true }));
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

/** A vCPU's state for the snapshot's JSON: its structs base64, MSR values hex. */
function encodeVcpu(v: KvmVcpuState): VcpuState {
  return {
    id: v.id, regs: b64(v.regs), sregs: b64(v.sregs), xsave: v.xsave === null ? null : b64(v.xsave), fpu: b64(v.fpu),
    xcrs: v.xcrs === null ? null : b64(v.xcrs), msrs: v.msrs.map((m) => [m.index, m.data.toString(16)]),
    lapic: b64(v.lapic), events: b64(v.events), mpState: v.mpState,
  };
}

function decodeVcpu(s: VcpuState): KvmVcpuState {
  return {
    id: s.id, regs: unb64(s.regs), sregs: unb64(s.sregs), xsave: s.xsave === null ? null : unb64(s.xsave), fpu: unb64(s.fpu),
    xcrs: s.xcrs === null ? null : unb64(s.xcrs), msrs: s.msrs.map(([index, hex]) => ({ index, data: BigInt(`0x${hex}`) })),
    lapic: unb64(s.lapic), events: unb64(s.events), mpState: s.mpState,
  };
}

function captureDevices(p: Platform): DeviceStates {
  return {
    uarts: p.uarts.map((u) => u.saveState()),
    i8042: p.i8042.saveState(),
    cmos: p.cmos.saveState(),
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
  const msrIndices = t.kvm.getMsrIndexList();
  settle(t.vcpus);
  t.console.flush();
  ph.mark('settle');
  const state: MachineStateData = {
    vcpus: t.vcpus.map((v) => encodeVcpu(v.saveState(msrIndices))),
    ...encodeVm(t.vm.saveState()),
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

function restoreDevices(p: Platform, d: DeviceStates): void {
  d.uarts.forEach((s, i) => p.uarts[i]?.loadState(s));
  if (d.i8042 !== null) p.i8042.loadState(d.i8042);
  if (d.cmos !== null) p.cmos.loadState(d.cmos);
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
    && (a.ports ?? []).join('\0') === (b.ports ?? []).join('\0')
    && (a.shares ?? []).map((x) => x.tag).join('\0') === (b.shares ?? []).map((x) => x.tag).join('\0');
  if (!same) {
    throw new NodeKvmError('ERR_SNAPSHOT_MISMATCH',
      `snapshot is of a machine with ${b.cpus} vCPU(s), ${b.memory} bytes RAM, ${b.comPorts} COM port(s), ${b.nics.length} NIC(s), ports [${b.ports ?? []}], shares [${(b.shares ?? []).map((x) => x.tag)}]; `
      + `this one has ${a.cpus}, ${a.memory}, ${a.comPorts}, ${a.nics.length}, [${a.ports ?? []}], [${(a.shares ?? []).map((x) => x.tag)}]`);
  }
}

/** Options of `machine.restore()` and `Machine.fromSnapshot()`. */
export interface RestoreOptions {
  /**
   * How RAM comes back. 'auto' (default): the snapshot's memory (its memfd or its file) is
   * mapped copy-on-write in place of the current RAM's pages (same slots and addresses:
   * `region.bytes` views stay valid and show the restored RAM). 'copy' copies into the current
   * RAM instead.
   */
  memory?: 'auto' | 'copy';
}

/**
 * Put `snap` back into `t` (not running). Devices first, then the irqchip, then the vCPUs.
 * Shares reopen their fids afterwards, asynchronously (Platform.finishShareLoads()).
 */
export function restoreSnapshot(t: SnapshotTarget, snap: MachineSnapshot, opts: RestoreOptions = {}): void {
  snap.ensureOpen(); // before anything in the machine changes
  checkCompatible(t, snap);
  const ph = phaseTimer('restore');
  settle(t.vcpus);
  ph.mark('settle');
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
  t.vm.loadState({ irqchip: s.irqchip.map(unb64), pit: unb64(s.pit), clock: unb64(s.clock) });
  ph.mark('irqchip+pit+clock');
  s.vcpus.forEach((vs, i) => t.vcpus[i]!.loadState(decodeVcpu(vs)));
  ph.mark('vcpus');
  // waitFor() looks only at output printed after the restore.
  t.console.flush();
  void t.console.waitFor(/$/, { timeout: 1 }).catch(() => undefined);
  ph.done();
}
