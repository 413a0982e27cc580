// vcpu.run() results as a discriminated union on `reason` (kvm-ioctls' VcpuExit, in TS).

export interface IoExit {
  reason: 'io';
  direction: 'in' | 'out';
  port: number;
  /** Access width in bytes (1, 2, 4). */
  size: number;
  /** Repetitions (rep ins/outs); data holds size*count bytes. */
  count: number;
  /** View into kvm_run's data page; for 'in', fill it before the next run(). */
  data: Uint8Array;
}

export interface MmioExit {
  reason: 'mmio';
  isWrite: boolean;
  address: number;
  size: number;
  /** View into kvm_run.mmio.data (8 bytes, `size` used); for reads, fill it before run(). */
  data: Uint8Array;
}

export interface SystemEventExit {
  reason: 'system-event';
  /** KVM_SYSTEM_EVENT_* : 'shutdown' | 'reset' | 'crash' | … */
  type: 'shutdown' | 'reset' | 'crash' | 'wakeup' | 'suspend' | 'sev-term' | 'unknown';
  rawType: number;
}

export interface FailEntryExit {
  reason: 'fail-entry';
  hardwareEntryFailureReason: bigint;
  cpu: number;
}

export interface InternalErrorExit {
  reason: 'internal-error';
  suberror: number;
  data: bigint[];
}

export interface SimpleExit {
  reason: 'hlt' | 'shutdown' | 'interrupted' | 'irq-window-open' | 'debug' | 'intr';
}

export interface UnknownExit {
  reason: 'unknown';
  exitReason: number;
}

export type VcpuExit = IoExit | MmioExit | SystemEventExit | FailEntryExit | InternalErrorExit | SimpleExit | UnknownExit | RunErrorExit;

/** KVM_RUN itself failed (errno other than EINTR). */
export interface RunErrorExit {
  reason: 'run-error';
  code: string;
  errno: number;
}
