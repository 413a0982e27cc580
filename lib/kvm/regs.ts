// Register files as plain objects. 64-bit values are bigint so nothing is silently rounded;
// small fields (selectors, limits, flags) are numbers. Names follow struct kvm_regs/kvm_sregs.

export interface Regs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** struct kvm_segment */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** struct kvm_dtable */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** struct kvm_sregs */
export interface Sregs {
  cs: Segment; ds: Segment; es: Segment; fs: Segment; gs: Segment; ss: Segment;
  tr: Segment; ldt: Segment;
  gdt: DescriptorTable; idt: DescriptorTable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** 256 bits of pending external interrupts, as 4 bigints. */
  interruptBitmap: bigint[];
}

/** What a 64-bit field accepts on the way in: a bigint, or a number when it is a safe integer. */
export type U64 = number | bigint;

/** setRegs() input: any subset of the registers, 64-bit values as bigint or number. */
export type RegsPatch = { [K in keyof Regs]?: U64 };

/** A partial segment for setSregs(): `base` may be a number too. */
export type SegmentPatch = Partial<Omit<Segment, 'base'>> & { base?: U64 };

/** A partial update: segments may be partial too; unspecified fields keep their value. */
export type SregsPatch = {
  [K in keyof Sregs]?: Sregs[K] extends Segment ? SegmentPatch
    : Sregs[K] extends DescriptorTable ? { base?: U64; limit?: number }
      : Sregs[K] extends bigint ? U64 : Sregs[K] extends bigint[] ? U64[] : Sregs[K];
};

/** struct kvm_fpu (the parts a VMM sets) */
export interface Fpu {
  fpr: Uint8Array; // 8 x 16 bytes
  fcw: number;
  fsw: number;
  ftwx: number;
  lastOpcode: number;
  lastIp: bigint;
  lastDp: bigint;
  xmm: Uint8Array; // 16 x 16 bytes
  mxcsr: number;
}

export interface MsrEntry {
  index: number;
  data: bigint;
}

/** setMsrs() input: `data` may be a number too. */
export interface MsrEntryInput {
  index: number;
  data: U64;
}

/** struct kvm_cpuid_entry2 */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** struct kvm_vcpu_events (flattened) */
export interface VcpuEvents {
  exception: { injected: number; nr: number; hasErrorCode: number; pending: number; errorCode: number };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number };
  sipiVector: number;
  flags: number;
  smi: { smm: number; pending: number; smmInsideNmi: number; latchedInit: number };
  tripleFault: { pending: number };
  exceptionHasPayload: number;
  exceptionPayload: bigint;
}

/** KVM_MP_STATE_* names */
export type MpState = 'runnable' | 'uninitialized' | 'init-received' | 'halted' | 'sipi-received' | 'stopped' | 'check-stop' | 'operating' | 'load';
