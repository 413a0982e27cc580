// Machine: composes KVM, RAM, the platform devices, the loaders and the run loop into a PC
// that boots a kernel (the steps of create() are in assemble.ts), runs it, and snapshots it.
// Lifecycle: create() → start() → wait() (or stop()) → close().
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { BootSetup } from '../boot/index.js';
import { P9Server } from '../devices/virtio/9p/server.js';
import { NodeKvmError } from '../errors.js';
import { constants } from '../kvm/constants.js';
import type { VcpuExit } from '../kvm/exit.js';
import { Kvm } from '../kvm/kvm.js';
import type { Vcpu } from '../kvm/vcpu.js';
import type { Vm } from '../kvm/vm.js';
import { checkOptions, keysOf } from '../options-check.js';
import { phaseTimer } from '../snapshot-trace.js';
import { createVcpus, createVmWithRam, loadGuest, wirePlatform, type MachineLinks } from './assemble.js';
import type { MachineConsole } from './console.js';
import { registerDump } from './diagnostics.js';
import { resolveOptions, type MachineOptions, type NetOptions, type ResolvedOptions } from './options.js';
import type { EndReason, Platform } from './platform.js';
import { captureSnapshot, restoreSnapshot, type MachineSnapshot, type RestoreOptions, type SnapshotConfig, type SnapshotTarget } from './snapshot.js';
import { restoredShares, withSharesQuiesced, type ShareOverride } from './snapshot-shares.js';

/** How a machine ended: what `wait()` resolves to and the `'exit'` event carries. */
export interface MachineResult {
  /** Why it ended. */
  reason: EndReason;
  /** debug-exit: (value << 1) | 1; error: 1; otherwise 0. */
  code: number;
  /** For 'error' and 'shutdown': what happened, in words. */
  detail?: string;
}

/** VM exits the machine handled, by kind (`machine.counters`). */
export interface ExitCounters {
  /** Port I/O exits. */
  io: number;
  /** Writes KVM queued in the coalesced ring instead of exiting. */
  coalesced: number;
  /** MMIO exits. */
  mmio: number;
  /** Exits because the vCPU was kicked (timers, sockets, stop()). */
  interrupted: number;
  /** Every other exit. */
  other: number;
  /** Port accesses no device claimed. */
  pioMisses: number;
  /** MMIO accesses no device claimed. */
  mmioMisses: number;
}

/** Backends for a machine built from a snapshot, one per NIC in order (MAC and revision come from the snapshot). */
export type NetBackendsFor = Array<Pick<NetOptions, 'backend'>>;

/** Options of `Machine.fromSnapshot()`. */
export interface FromSnapshotOptions {
  /** One backend per NIC of the snapshot, in order. */
  net?: NetBackendsFor;
  /** Default /dev/kvm. */
  kvmPath?: string;
  /**
   * Shares whose host directory differs from the snapshot's, by tag (each tag one the
   * snapshot has: ERR_SNAPSHOT_MISMATCH otherwise). Shares not named keep the snapshot's path.
   */
  shares?: ShareOverride[];
}

/** Where a machine is in its lifecycle: create() → start() → (pause()/resume()) → ended → close(). */
export type MachineState = 'created' | 'running' | 'paused' | 'ended' | 'closed';

/**
 * A PC that boots a kernel: RAM, vCPUs, the in-kernel irqchip and PIT, a 16550A UART, i8042,
 * CMOS/RTC, fw_cfg, ACPI and MP tables, a PCI host bridge, RTL8139 NICs, and on request a
 * virtio-console with named ports and virtio-9p shares. Lifecycle:
 * `Machine.create()` → `start()` → `wait()` (or `stop()`) → `close()`. Emits `'exit'` with a
 * {@link MachineResult} and `'console'` with each chunk of console output.
 */
export class Machine extends EventEmitter implements AsyncDisposable {
  /** COM1 as a Duplex stream: the guest's output to read, your input to write. */
  readonly console: MachineConsole;
  /** VM exits handled so far, by kind. */
  readonly counters: ExitCounters = { io: 0, coalesced: 0, mmio: 0, interrupted: 0, other: 0, pioMisses: 0, mmioMisses: 0 };
  /** @internal where the loader put the kernel and how the vCPUs enter it */
  readonly boot: BootSetup;
  private stateValue: MachineState = 'created';
  private result: MachineResult | undefined;
  private readonly done: Promise<MachineResult>;
  private resolveDone!: (r: MachineResult) => void;
  private loopAbort: AbortController | undefined;
  private loopPromise: Promise<void> | undefined;
  private readonly netFailureOffs: Array<() => void>;

  private constructor(
    private readonly kvm: Kvm,
    /** The KVM VM, for low-level access (memory, irq lines). */
    readonly vm: Vm,
    /** The vCPUs; vCPU 0 runs on the main thread, the others on native threads. */
    readonly vcpus: Vcpu[],
    /** @internal the devices and buses */
    readonly platform: Platform,
    /** @internal the options, validated and resolved */
    readonly options: ResolvedOptions,
    boot: BootSetup,
    console: MachineConsole,
  ) {
    super();
    this.boot = boot;
    this.console = console;
    this.console.on('output', (chunk: Buffer) => this.emit('console', chunk));
    this.netFailureOffs = options.net.map((n, nic) => n.backend.onFailure?.((error) => this.emit('net-error', { nic, error })) ?? (() => {}));
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /** Build the VM and load the kernel. Nothing runs until start(). */
  static async create(opts: MachineOptions): Promise<Machine> {
    return Machine.build(opts, false);
  }

  /**
   * create(), or with `forRestore` the shell that fromSnapshot restores into: then it skips what
   * the restore overwrites anyway (ACPI and MP tables in RAM, the LAPIC LVTs, the boot registers).
   */
  private static async build(opts: MachineOptions, forRestore: boolean): Promise<Machine> {
    const ph = phaseTimer('create');
    // Backends with a helper process (the user network) must be up before the guest can use them.
    await Promise.all((opts?.net ?? []).map((n) => n?.backend?.ready));
    const kvm = Kvm.open(opts?.kvmPath ?? '/dev/kvm');
    let vm: Vm | undefined;
    let platform: Platform | undefined;
    let shares: P9Server[] = [];
    try {
      const maxVcpus = kvm.checkExtension(constants.KVM_CAP_MAX_VCPUS!) || kvm.checkExtension(constants.KVM_CAP_NR_VCPUS!) || 1;
      const o = resolveOptions(opts, Math.min(maxVcpus, 254));
      shares = await Promise.all(o.shares.map((s) => P9Server.open(s)));
      ph.mark('options');
      const ram = createVmWithRam(kvm, o.memory);
      vm = ram.vm;
      ph.mark('vm+ram');
      const links: MachineLinks = {};
      const wired = wirePlatform(vm, o, ram, shares, links);
      platform = wired.platform;
      ph.mark('devices');
      const boot = loadGuest(vm, platform, o, ram.ramLayout, forRestore);
      ph.mark('tables+kernel');
      const vcpus = createVcpus(kvm, vm, o, boot, forRestore);
      ph.mark('vcpus');
      const m = new Machine(kvm, vm, vcpus, platform, o, boot, wired.console);
      links.end = (reason, code, detail) => m.finish({ reason, code, detail });
      links.drainCoalesced = () => m.drainCoalescedNow();
      ph.done();
      return m;
    } catch (e) {
      await Promise.all(shares.map((sv) => sv.close()));
      platform?.close();
      vm?.close();
      kvm.close();
      throw e;
    }
  }

  /** Where the machine is in its lifecycle. */
  get state(): MachineState {
    return this.stateValue;
  }

  /** Start (or continue after pause) running the guest. */
  start(): void {
    if (this.stateValue === 'running') return;
    if (this.stateValue !== 'created' && this.stateValue !== 'paused') {
      throw new NodeKvmError('ERR_MACHINE_STATE', `cannot start a machine that is ${this.stateValue}`);
    }
    this.stateValue = 'running';
    const onExit = (exit: VcpuExit, vcpu: Vcpu): 'stop' | void => this.handleExit(exit, vcpu);
    for (const ap of this.vcpus.slice(1)) ap.startThread((e) => onExit(e, ap));
    const bsp = this.vcpus[0]!;
    const abort = new AbortController();
    this.loopAbort = abort;
    this.loopPromise = bsp.runLoop((e) => onExit(e, bsp), { signal: abort.signal, onInterrupted: this.drainCoalesced }).catch((err: unknown) => {
      this.finish({ reason: 'error', code: 1, detail: `run loop failed: ${(err as Error)?.stack ?? String(err)}` });
    });
  }

  private readonly applyCoalesced = (pio: boolean, address: number, size: number, value: number): void => {
    (pio ? this.platform.pio : this.platform.mmio).write(address, size, value);
  };

  /** @internal A BAR is about to move: apply what the ring holds while its old address still decodes. */
  drainCoalescedNow(): void {
    if (!this.vcpus[0]!.closed) this.drainCoalesced();
  }

  /** Apply the writes KVM queued in the coalesced ring (the ring is per VM; every vCPU maps it). */
  private readonly drainCoalesced = (): void => {
    const run = this.vcpus[0]!.runState;
    if (run.coalescedPending) this.counters.coalesced += run.drainCoalesced(this.applyCoalesced);
  };

  private handleExit(exit: VcpuExit, vcpu: Vcpu): 'stop' | void {
    const c = this.counters;
    this.drainCoalesced();
    switch (exit.reason) {
      case 'io':
        c.io++;
        this.platform.pio.handleIo(exit);
        break;
      case 'mmio':
        c.mmio++;
        this.platform.mmio.handleMmio(exit);
        break;
      case 'hlt':
      case 'irq-window-open':
      case 'interrupted':
        c.other++;
        break;
      case 'shutdown':
        this.finish({ reason: 'shutdown', code: 2, detail: `triple fault\n${registerDump(vcpu)}` });
        break;
      case 'system-event':
        if (exit.type === 'reset') this.finish({ reason: 'reboot', code: 0, detail: 'KVM system event: reset' });
        else if (exit.type === 'shutdown') this.finish({ reason: 'poweroff', code: 0, detail: 'KVM system event: shutdown' });
        else this.finish({ reason: 'error', code: 2, detail: `KVM system event ${exit.type}\n${registerDump(vcpu)}` });
        break;
      default:
        this.finish({ reason: 'error', code: 2, detail: `${exit.reason} exit: ${JSON.stringify(exit, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}\n${registerDump(vcpu)}` });
    }
    if (this.stateValue !== 'running') return 'stop';
  }

  /** End the machine with `r` (first reason wins). */
  private finish(r: MachineResult): void {
    if (this.result !== undefined) return;
    this.result = r;
    this.stateValue = 'ended';
    this.loopAbort?.abort();
    for (const ap of this.vcpus.slice(1)) {
      // An AP may be the caller (its exit is being handled on the main thread): stopping its
      // thread here would wait on itself, so defer the join past this handler.
      setImmediate(() => { if (!ap.closed) ap.stopThread(); });
    }
    this.console.flush();
    const pio = this.platform.pio;
    const mmio = this.platform.mmio;
    this.counters.pioMisses = pio.missCount;
    this.counters.mmioMisses = mmio.missCount;
    this.console.push(null);
    this.platform.virtioConsole?.machineEnded(`the machine ended (${r.reason})`);
    this.console.abortWaiters(new NodeKvmError('ERR_MACHINE_ENDED', `the machine ended (${r.reason}${r.detail ? `: ${r.detail.split('\n')[0]}` : ''})`));
    this.emit('exit', r);
    this.resolveDone(r);
  }

  /**
   * The host end of virtio-console port `name` (Machine.create({ ports: [{ name }] })): a Duplex
   * with flow control both ways. Throws ERR_NO_SUCH_PORT for an unknown name and ERR_PORT_BUSY
   * while an earlier stream of the same port is still open (end or destroy it first).
   */
  port(name: string): Duplex {
    const p = this.platform.virtioConsole?.port(name);
    if (p === undefined) {
      const known = this.platform.virtioConsole?.portNames ?? [];
      throw new NodeKvmError('ERR_NO_SUCH_PORT', `no port named ${JSON.stringify(name)} (ports: ${known.length > 0 ? known.join(', ') : 'none'})`);
    }
    return p.open();
  }

  /** Resolves when the guest powers off, reboots, debug-exits, triple-faults or fails. */
  wait(): Promise<MachineResult> {
    return this.done;
  }

  /** Pause: vCPUs leave KVM_RUN and stay where they are until resume(). */
  async pause(): Promise<void> {
    if (this.stateValue !== 'running') return;
    this.stateValue = 'paused';
    this.loopAbort?.abort();
    for (const ap of this.vcpus.slice(1)) ap.stopThread();
    await this.loopPromise;
    // Writes still queued in the coalesced ring belong to the state a snapshot sees.
    const run = this.vcpus[0]!.runState;
    if (run.coalescedPending) this.counters.coalesced += run.drainCoalesced(this.applyCoalesced);
  }

  /** Let paused vCPUs run again. */
  resume(): void {
    if (this.stateValue === 'paused') this.start();
  }

  /** Stop the guest now (reason 'stopped'). */
  async stop(): Promise<MachineResult> {
    if (this.result === undefined) this.finish({ reason: 'stopped', code: 0, detail: 'stopped by the host' });
    await this.loopPromise;
    return this.result!;
  }

  /** Release everything: vCPU threads, VM, RAM, backends' attachments, /dev/kvm. */
  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    await this.stop();
    for (const ap of this.vcpus) ap.stopThread();
    this.console.abortWaiters(new NodeKvmError('ERR_MACHINE_CLOSED', 'machine closed'));
    for (const off of this.netFailureOffs) off();
    await this.platform.closeShares();
    this.platform.close();
    this.vm.close();
    this.kvm.close();
    this.stateValue = 'closed';
  }

  private snapshotTarget(): SnapshotTarget {
    let tscKhz: number | null = null;
    try {
      tscKhz = this.vcpus[0]!.getTscKhz();
    } catch {
      tscKhz = null;
    }
    const config: SnapshotConfig = {
      memory: this.options.memory, cpus: this.options.cpus, comPorts: this.options.comPorts, clearXsave: this.options.clearXsave,
      ram: this.vm.memory.regions.map((r) => ({ slot: r.slot, guestPhysAddr: r.guestPhysAddr, size: r.size })),
      nics: this.platform.nics.map((nic) => ({ mac: [...nic.mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), revision: nic.revision })),
      ports: this.options.ports.map((p) => p.name),
      ...(this.options.shares.length > 0 ? { shares: this.options.shares.map((s) => ({ tag: s.tag, path: s.path, readonly: s.readonly })) } : {}),
      tscKhz,
    };
    return { kvm: this.kvm, vm: this.vm, vcpus: this.vcpus, platform: this.platform, console: this.console, config };
  }

  /**
   * Capture the whole machine (vCPUs, irqchip, PIT, kvmclock, devices, RAM copied into a memfd). A running
   * machine is paused for the capture and resumed after it.
   */
  async snapshot(): Promise<MachineSnapshot> {
    const was = this.stateValue;
    if (was !== 'running' && was !== 'paused' && was !== 'created') {
      throw new NodeKvmError('ERR_MACHINE_STATE', `cannot snapshot a machine that is ${was}`);
    }
    await this.pause();
    try {
      // Shares' requests under way finish first (ERR_SNAPSHOT_BUSY after 30 s).
      return await withSharesQuiesced(this.platform, () => captureSnapshot(this.snapshotTarget()));
    } finally {
      if (was === 'running') this.resume();
    }
  }

  /**
   * Put this machine back to `snap` (taken from this machine or one built alike). A running
   * machine is paused for it and resumed after it.
   */
  async restore(snap: MachineSnapshot, opts: RestoreOptions = {}): Promise<void> {
    checkOptions('restore', opts, keysOf<RestoreOptions>({ memory: true }));
    const was = this.stateValue;
    if (was !== 'running' && was !== 'paused' && was !== 'created') {
      throw new NodeKvmError('ERR_MACHINE_STATE', `cannot restore into a machine that is ${was}`);
    }
    await this.pause();
    try {
      await withSharesQuiesced(this.platform, async () => {
        try {
          restoreSnapshot(this.snapshotTarget(), snap, opts);
        } finally {
          await this.platform.finishShareLoads();
        }
      });
    } finally {
      if (was === 'running') this.resume();
    }
  }

  /**
   * A new machine in the state of `snap` (same RAM size, vCPUs, COM ports and NICs), not yet
   * started. RAM is mapped copy-on-write from the snapshot's memfd or file. NICs keep the snapshot's MAC and revision; `net` gives their backends.
   * Shares export the snapshot's host directories (or `shares`' by tag); the guest's open 9P
   * fids are reopened there by path, or answer ESTALE when their file is gone.
   */
  static async fromSnapshot(snap: MachineSnapshot, opts: FromSnapshotOptions = {}): Promise<Machine> {
    checkOptions('Machine.fromSnapshot', opts, keysOf<FromSnapshotOptions>({ net: true, kvmPath: true, shares: true }));
    return Machine.restoreShell(await Machine.snapshotShell(snap, opts), snap);
  }

  /**
   * @internal The first half of fromSnapshot(): the machine `snap` is restored into (its RAM
   * size, vCPUs, devices, backends and shares), built but holding no guest state yet. Built
   * ahead of need, it takes the KVM set-up out of the restore's time (a template's next fork).
   */
  static async snapshotShell(snap: MachineSnapshot, opts: FromSnapshotOptions = {}): Promise<Machine> {
    const c = snap.config;
    const backends = opts.net ?? [];
    if (backends.length !== c.nics.length) {
      throw new NodeKvmError('ERR_SNAPSHOT_MISMATCH', `snapshot has ${c.nics.length} NIC(s): pass as many net backends (got ${backends.length})`);
    }
    return Machine.build({
      // A one-byte HLT stands in for the kernel: RAM and every register come from the snapshot.
      kernel: Uint8Array.of(0xf4), flat: { mode: 'real' },
      memory: c.memory, cpus: c.cpus, clearXsave: c.clearXsave, kvmPath: opts.kvmPath,
      devices: Array.from({ length: c.comPorts - 1 }, (_, i) => `com${i + 2}`),
      net: backends.map((b, i) => ({ ...b, mac: c.nics[i]!.mac, revision: c.nics[i]!.revision as 0x10 | 0x20 })),
      ports: (c.ports ?? []).map((name) => ({ name })),
      shares: restoredShares(c, opts.shares),
    }, true);
  }

  /**
   * @internal The second half of fromSnapshot(): `snap`'s state into `shell`, a machine
   * snapshotShell() built from the same snapshot and never started. Closes it on failure.
   */
  static async restoreShell(shell: Machine, snap: MachineSnapshot): Promise<Machine> {
    if (shell.stateValue !== 'created') throw new NodeKvmError('ERR_MACHINE_STATE', `cannot restore into a machine that is ${shell.stateValue}`);
    const ph = phaseTimer('fromSnapshot');
    try {
      restoreSnapshot(shell.snapshotTarget(), snap);
      ph.mark('restore');
      await shell.platform.finishShareLoads();
      ph.mark('shares');
      ph.done();
    } catch (e) {
      await shell.close();
      throw e;
    }
    return shell;
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
