// A vCPU: run it (synchronously, or in the event-loop-friendly runLoop), or on a native thread
// (extra SMP vCPUs), and get/set its state.
import { InvalidArgumentError, KvmError, NodeKvmError } from '../errors.js';
import { native } from '../native.js';
import { mpStateName, mpStateNumber } from './constants.js';
import type { VcpuExit } from './exit.js';
import { FdHandle } from './handle.js';
import { KvmRun } from './kvm-run.js';
import type { CpuidEntry, Fpu, MpState, MsrEntry, MsrEntryInput, Regs, RegsPatch, Sregs, SregsPatch, VcpuEvents } from './regs.js';
import * as S from './structs.js';
import { VCPUEVENT_LOAD_FLAGS, type VcpuState } from './state.js';
import { toBigInt } from './u64.js';

/** A run-loop callback: return 'stop' to leave the loop. */
export type ExitHandler = (exit: VcpuExit) => 'stop' | void;

/** Options of runLoop(). */
export interface RunLoopOptions {
  /** Abort to leave the loop (the vCPU is kicked out of KVM_RUN). */
  signal?: AbortSignal;
  /**
   * Called for each 'interrupted' exit (a kick) before the loop yields to the event loop, e.g.
   * to apply writes KVM queued in the coalesced ring while the guest ran without exiting.
   */
  onInterrupted?: () => void;
}

/** How long one pump may keep the main thread while it keeps getting exits (ms). */
const PUMP_SLICE_MS = 10;
/** Time slice when several run loops share the main thread (ms). */
const SHARED_SLICE_MS = 4;
/**
 * Longest a lone run loop stays in the guest without yielding. The kicker only sees fds that
 * libuv has already added to its epoll set, and libuv adds new watchers (a server started by
 * an exit handler, a thread-safe function's async handle) only when the loop polls; this
 * bound makes sure such late arrivals are noticed. A kick costs ~40 µs: 20/s is noise.
 */
const IDLE_SLICE_MS = 50;

let activeLoops = 0;
/** The shortest yieldSoon() asked for since the run loop last set the kicker's slice (0: none). */
let yieldRequestedMs = 0;

/**
 * Make the run loop on the main thread give the event loop a turn within `ms`, even if the
 * guest goes idle in an in-kernel HLT: for device work queued with setImmediate (console
 * output), which the kicker does not see. The kicker picks the deadline up at the next run().
 */
export function yieldSoon(ms = 1): void {
  yieldRequestedMs = yieldRequestedMs > 0 ? Math.min(yieldRequestedMs, ms) : ms;
  native().kickerRefreshTimers(ms);
}

/** A virtual CPU: run it, kick it, and get or set its state. */
export class Vcpu extends FdHandle {
  /** @internal the shared kvm_run page, decoded in place */
  readonly runState: KvmRun;
  /** The vCPU's id (its APIC id), as given to createVcpu(). */
  readonly id: number;
  private threaded = false;
  private looping = false;

  /** @internal created by Vm.createVcpu */
  constructor(fd: number, id: number, mmapSize: number, private readonly onClose: (v: Vcpu) => void) {
    super(fd, `vCPU ${id}`);
    this.id = id;
    const n = native();
    let buf: ArrayBuffer;
    try {
      buf = n.mmapFd(fd, mmapSize);
    } catch (e) {
      this.discardAfterFailedInit();
      throw e;
    }
    try {
      this.runState = new KvmRun(buf);
      n.registerRun(fd, buf);
    } catch (e) {
      n.munmap(buf);
      this.discardAfterFailedInit();
      throw e;
    }
  }

  protected override releaseResources(): void {
    const n = native();
    const fd = this.rawFd;
    if (this.threaded) n.stopVcpuThread(fd);
    n.unregisterRun(fd);
    n.munmap(this.runState.buffer);
    this.onClose(this);
  }

  /** Enter the guest once and return why it came back. */
  run(): VcpuExit {
    this.ensureOpen();
    if (this.threaded) throw new NodeKvmError('ERR_VCPU_THREADED', `vCPU ${this.id} runs on a native thread`);
    let reason: number;
    try {
      reason = native().run(this.rawFd);
    } catch (e) {
      if (e instanceof KvmError) return { reason: 'run-error', code: e.code, errno: e.errno };
      throw e;
    }
    return this.runState.decode(reason);
  }

  /**
   * Run on the main thread until `onExit` returns 'stop' or `signal` aborts, keeping the event
   * loop responsive: a native kicker interrupts KVM_RUN when an fd is ready or a timer is due,
   * and the loop yields with setImmediate (DESIGN §4).
   */
  async runLoop(onExit: ExitHandler, options: RunLoopOptions = {}): Promise<void> {
    this.ensureOpen();
    if (this.looping) throw new NodeKvmError('ERR_RUN_LOOP_ACTIVE', `vCPU ${this.id} already has a run loop`);
    const { signal } = options;
    const n = native();
    this.looping = true;
    activeLoops++;
    n.kickerRef();
    try {
      // One event-loop turn first, so libuv registers every watcher started so far with epoll
      // before the guest takes the thread (see IDLE_SLICE_MS).
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (;;) {
        if (signal?.aborted || this.closed) return;
        // A request made while the loop was yielding (device work deferred from a turn of the
        // event loop, console output) holds for this slice too, or the guest would run on
        // without a kick for the whole idle slice.
        const slice = activeLoops > 1 ? SHARED_SLICE_MS : IDLE_SLICE_MS;
        n.kickerRefreshTimers(yieldRequestedMs > 0 ? Math.min(yieldRequestedMs, slice) : slice);
        yieldRequestedMs = 0;
        const sliceEnd = performance.now() + PUMP_SLICE_MS;
        let handled = 0;
        for (;;) {
          const exit = this.run();
          if (exit.reason === 'interrupted') {
            options.onInterrupted?.();
            break;
          }
          if (onExit(exit) === 'stop') return;
          if (this.closed) return;
          // A guest that exits constantly is never kicked; give microtasks and nextTick a turn.
          if ((++handled & 63) === 0 && performance.now() > sliceEnd) break;
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      n.kickerUnref();
      activeLoops--;
      this.looping = false;
    }
  }

  /** Make the current or next KVM_RUN of this vCPU return at once ('interrupted'). */
  kick(): void {
    this.ensureOpen();
    native().kick(this.rawFd);
  }

  /**
   * Run this vCPU on a native thread (extra SMP vCPUs). Exits that need the device model are
   * handed to `onExit` on the main thread; the thread waits until it returns.
   */
  startThread(onExit: ExitHandler): void {
    this.ensureOpen();
    if (this.threaded) throw new NodeKvmError('ERR_VCPU_THREADED', `vCPU ${this.id} already runs on a thread`);
    native().startVcpuThread(this.rawFd, (_fd, reason, errno) => {
      if (this.closed) return true;
      const exit: VcpuExit = reason === -2
        ? { reason: 'run-error', code: `E${errno}`, errno }
        : this.runState.decode(reason);
      return onExit(exit) === 'stop';
    });
    this.threaded = true;
  }

  /** Stop the native thread startThread() began and wait for it. */
  stopThread(): void {
    if (!this.threaded) return;
    native().stopVcpuThread(this.rawFd);
    this.threaded = false;
  }

  /** True while a native thread (startThread) runs this vCPU. */
  get isThreaded(): boolean {
    return this.threaded;
  }

  /** KVM_GET_REGS. */
  getRegs(): Regs {
    this.ensureOpen();
    return S.decodeRegs(native().getRegs(this.rawFd));
  }

  /** Registers not named keep their value; each value is a bigint or a safe-integer number in [0, 2^64). */
  setRegs(regs: RegsPatch): void {
    this.ensureOpen();
    native().setRegs(this.rawFd, S.encodeRegs(S.mergeRegs(this.getRegs(), regs)));
  }

  /** KVM_GET_SREGS. */
  getSregs(): Sregs {
    this.ensureOpen();
    return S.decodeSregs(native().getSregs(this.rawFd));
  }

  /** KVM_SET_SREGS; fields (and segment fields) left out keep their value. */
  setSregs(patch: SregsPatch): void {
    this.ensureOpen();
    native().setSregs(this.rawFd, S.encodeSregs(S.mergeSregs(this.getSregs(), strictSregs(patch))));
  }

  /** KVM_GET_FPU. */
  getFpu(): Fpu {
    this.ensureOpen();
    return S.decodeFpu(native().getFpu(this.rawFd));
  }

  /** KVM_SET_FPU; fields left out keep their value. */
  setFpu(fpu: Partial<Fpu>): void {
    this.ensureOpen();
    native().setFpu(this.rawFd, S.encodeFpu({ ...this.getFpu(), ...fpu }));
  }

  /** KVM_GET_MSRS for the given MSR numbers. */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    this.ensureOpen();
    const buf = S.encodeMsrs(indices.map((index) => ({ index, data: 0n })));
    const n = native().getMsrs(this.rawFd, buf);
    return S.decodeMsrs(buf, n);
  }

  /** Returns how many MSRs KVM accepted (it stops at the first it refuses). */
  setMsrs(entries: readonly MsrEntryInput[]): number {
    this.ensureOpen();
    if (!Array.isArray(entries)) throw new InvalidArgumentError('setMsrs needs an array of { index, data }');
    return native().setMsrs(this.rawFd, S.encodeMsrs(entries.map((e) => ({ index: e.index, data: toBigInt(e.data, `MSR 0x${Number(e.index).toString(16)} data`) }))));
  }

  /** KVM_SET_CPUID2: what CPUID reports to the guest. */
  setCpuid2(entries: readonly CpuidEntry[]): void {
    this.ensureOpen();
    native().setCpuid2(this.rawFd, S.encodeCpuid(entries));
  }

  /** struct kvm_lapic_state: the 1 KiB APIC register page. */
  getLapic(): Uint8Array {
    this.ensureOpen();
    return native().getLapic(this.rawFd);
  }

  /** KVM_SET_LAPIC from the bytes getLapic() returned (struct kvm_lapic_state). */
  setLapic(state: Uint8Array): void {
    this.ensureOpen();
    native().setLapic(this.rawFd, state);
  }

  /** KVM_GET_VCPU_EVENTS: pending exceptions, interrupts, NMI and SMI. */
  getVcpuEvents(): VcpuEvents {
    this.ensureOpen();
    return S.decodeVcpuEvents(native().getVcpuEvents(this.rawFd));
  }

  /** KVM_SET_VCPU_EVENTS. */
  setVcpuEvents(events: VcpuEvents): void {
    this.ensureOpen();
    native().setVcpuEvents(this.rawFd, S.encodeVcpuEvents(events));
  }

  /** KVM_GET_MP_STATE. */
  getMpState(): MpState {
    this.ensureOpen();
    return mpStateName(native().getMpState(this.rawFd));
  }

  /** KVM_SET_MP_STATE. */
  setMpState(state: MpState): void {
    this.ensureOpen();
    native().setMpState(this.rawFd, mpStateNumber(state));
  }

  /** struct kvm_xcrs as raw bytes. */
  getXcrs(): Uint8Array {
    this.ensureOpen();
    return native().getXcrs(this.rawFd);
  }

  /** KVM_SET_XCRS from the bytes getXcrs() returned. */
  setXcrs(xcrs: Uint8Array): void {
    this.ensureOpen();
    native().setXcrs(this.rawFd, xcrs);
  }

  /** KVM_SET_SIGNAL_MASK: signals blocked only while this vCPU is in KVM_RUN (null clears). */
  setSignalMask(signals: number[] | null): void {
    this.ensureOpen();
    native().setSignalMask(this.rawFd, signals);
  }

  /** Binary statistics fd for this vCPU (caller closes it). */
  getStatsFd(): number {
    this.ensureOpen();
    return native().getStatsFd(this.rawFd);
  }

  /** KVM_GET_TSC_KHZ: the guest's TSC rate. */
  getTscKhz(): number {
    this.ensureOpen();
    return native().getTscKhz(this.rawFd);
  }

  /** KVM_GET_XSAVE: the extended state (x87, SSE, AVX…) as struct kvm_xsave. */
  getXsave(): Uint8Array {
    this.ensureOpen();
    return native().getXsave(this.rawFd);
  }

  /** KVM_SET_XSAVE from the bytes getXsave() returned. */
  setXsave(xsave: Uint8Array): void {
    this.ensureOpen();
    native().setXsave(this.rawFd, xsave);
  }

  /**
   * Everything KVM holds for this vCPU, as its own structs: registers, XSAVE (or the FPU where
   * KVM refuses XSAVE), XCRs, the MSRs of `msrIndices` it reads, LAPIC, pending events, MP
   * state. Take it while the vCPU is out of KVM_RUN with nothing pending (see Machine).
   */
  saveState(msrIndices: readonly number[]): VcpuState {
    this.ensureOpen();
    const n = native();
    const fd = this.rawFd;
    let xsave: Uint8Array | null = null;
    try {
      xsave = n.getXsave(fd);
    } catch {
      xsave = null; // kvm_pvm refuses KVM_GET_XSAVE: the FPU state carries x87/SSE
    }
    let xcrs: Uint8Array | null = null;
    try {
      xcrs = n.getXcrs(fd);
    } catch {
      xcrs = null;
    }
    return {
      id: this.id,
      regs: n.getRegs(fd),
      sregs: n.getSregs(fd),
      xsave,
      fpu: n.getFpu(fd),
      xcrs,
      msrs: this.readableMsrs(msrIndices),
      lapic: n.getLapic(fd),
      events: n.getVcpuEvents(fd),
      mpState: n.getMpState(fd),
    };
  }

  /** Put back what saveState() returned. MSRs KVM refuses are skipped; returns their numbers. */
  loadState(s: VcpuState): number[] {
    this.ensureOpen();
    const n = native();
    const fd = this.rawFd;
    n.setSregs(fd, s.sregs);
    n.setRegs(fd, s.regs);
    if (s.xcrs !== null) n.setXcrs(fd, s.xcrs);
    if (s.xsave !== null) n.setXsave(fd, s.xsave);
    else n.setFpu(fd, s.fpu);
    const refused = this.writeMsrs(s.msrs);
    n.setLapic(fd, s.lapic);
    n.setMpState(fd, s.mpState);
    // NMI-pending and the SIPI vector are only applied when their valid flags are set, and GET
    // does not set them.
    const ev = s.events.slice();
    const flagsOff = n.layout.kvm_vcpu_events.flags!;
    const dv = new DataView(ev.buffer, ev.byteOffset, ev.byteLength);
    dv.setUint32(flagsOff, dv.getUint32(flagsOff, true) | VCPUEVENT_LOAD_FLAGS, true);
    n.setVcpuEvents(fd, ev);
    return refused;
  }

  /** KVM_GET_MSRS stops at the first MSR it cannot read: drop that one and ask again. */
  private readableMsrs(indices: readonly number[]): MsrEntry[] {
    let list = [...indices];
    for (;;) {
      const got = this.getMsrs(list);
      if (got.length === list.length) return got;
      list = [...list.slice(0, got.length), ...list.slice(got.length + 1)];
    }
  }

  /** KVM_SET_MSRS stops at the first MSR it refuses: skip that one and go on. Returns the refused. */
  private writeMsrs(entries: readonly MsrEntry[]): number[] {
    const refused: number[] = [];
    let rest = entries;
    while (rest.length > 0) {
      const done = this.setMsrs(rest);
      if (done >= rest.length) break;
      refused.push(rest[done]!.index);
      rest = rest.slice(done + 1);
    }
    return refused;
  }
}

/** The 64-bit fields of struct kvm_sregs and its segments: a number there becomes a bigint. */
const SREG_U64 = new Set(['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase']);

/** `patch` with every number in a 64-bit field (a segment's or table's base, CRs, EFER) as a bigint. */
function strictSregs(patch: SregsPatch): Parameters<typeof S.mergeSregs>[1] {
  if (patch === null || typeof patch !== 'object') throw new InvalidArgumentError('setSregs needs an object');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const part = { ...(v as Record<string, unknown>) };
      if (part.base !== undefined) part.base = toBigInt(part.base as bigint | number, `${k}.base`);
      out[k] = part;
    } else if (SREG_U64.has(k) && v !== undefined) {
      out[k] = toBigInt(v as bigint | number, k);
    } else {
      out[k] = v;
    }
  }
  return out as Parameters<typeof S.mergeSregs>[1];
}
