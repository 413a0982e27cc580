// vcpu.run() results as a discriminated union on `reason` (kvm-ioctls' VcpuExit, in TS).

/** The guest executed in/out (or ins/outs) on a port no in-kernel device handles. */
export interface IoExit {
  /** Discriminant. */
  reason: 'io';
  /** 'in' reads from the port into the guest, 'out' writes to it. */
  direction: 'in' | 'out';
  /** The I/O port, 0-0xffff. */
  port: number;
  /** Access width in bytes (1, 2, 4). */
  size: number;
  /** Repetitions (rep ins/outs); data holds size*count bytes. */
  count: number;
  /** View into kvm_run's data page; for 'in', fill it before the next run(). */
  data: Uint8Array;
}

/** The guest accessed guest-physical memory no RAM slot backs. */
export interface MmioExit {
  /** Discriminant. */
  reason: 'mmio';
  /** True for a store, false for a load. */
  isWrite: boolean;
  /** Guest-physical address. */
  address: number;
  /** Access width in bytes (1, 2, 4, 8). */
  size: number;
  /** View into kvm_run.mmio.data (8 bytes, `size` used); for reads, fill it before run(). */
  data: Uint8Array;
}

/** KVM_EXIT_SYSTEM_EVENT: the guest asked for a shutdown, reset or crash (PSCI, triple fault handling…). */
export interface SystemEventExit {
  /** Discriminant. */
  reason: 'system-event';
  /** KVM_SYSTEM_EVENT_* : 'shutdown' | 'reset' | 'crash' | … */
  type: 'shutdown' | 'reset' | 'crash' | 'wakeup' | 'suspend' | 'sev-term' | 'unknown';
  /** The KVM_SYSTEM_EVENT_* number. */
  rawType: number;
}

/** KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest (bad vCPU state). */
export interface FailEntryExit {
  /** Discriminant. */
  reason: 'fail-entry';
  /** The VMX/SVM exit qualification. */
  hardwareEntryFailureReason: bigint;
  /** Host CPU the entry failed on. */
  cpu: number;
}

/** KVM_EXIT_INTERNAL_ERROR: KVM could not emulate or deliver something (see `suberror`). */
export interface InternalErrorExit {
  /** Discriminant. */
  reason: 'internal-error';
  /** KVM_INTERNAL_ERROR_* (1 emulation, 2 simultaneous exceptions, 3 delivery…). */
  suberror: number;
  /** Extra words KVM reports with it. */
  data: bigint[];
}

/** An exit with no payload: HLT without an in-kernel irqchip, a triple fault ('shutdown'), a kick ('interrupted'), … */
export interface SimpleExit {
  /** Discriminant. */
  reason: 'hlt' | 'shutdown' | 'interrupted' | 'irq-window-open' | 'debug' | 'intr';
}

/** An exit reason node-kvm does not decode. */
export interface UnknownExit {
  /** Discriminant. */
  reason: 'unknown';
  /** The raw KVM_EXIT_* number. */
  exitReason: number;
}

/** What `vcpu.run()` returns: a union tagged by `reason`. */
export type VcpuExit = IoExit | MmioExit | SystemEventExit | FailEntryExit | InternalErrorExit | SimpleExit | UnknownExit | RunErrorExit;

/** KVM_RUN itself failed (errno other than EINTR). */
export interface RunErrorExit {
  /** Discriminant. */
  reason: 'run-error';
  /** errno name. */
  code: string;
  /** errno number. */
  errno: number;
}
