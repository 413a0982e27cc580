// Register files as plain objects. 64-bit values are bigint so nothing is silently rounded;
// small fields (selectors, limits, flags) are numbers. Names follow struct kvm_regs/kvm_sregs.

/** struct kvm_regs: the general-purpose registers, RIP and RFLAGS. */
export interface Regs {
  /** Accumulator. */
  rax: bigint;
  /** Base. */
  rbx: bigint;
  /** Counter. */
  rcx: bigint;
  /** Data (and the I/O port of in/out). */
  rdx: bigint;
  /** Source index (the boot_params pointer of the Linux boot protocol). */
  rsi: bigint;
  /** Destination index. */
  rdi: bigint;
  /** Stack pointer. */
  rsp: bigint;
  /** Frame pointer. */
  rbp: bigint;
  /** General-purpose register 8. */
  r8: bigint;
  /** General-purpose register 9. */
  r9: bigint;
  /** General-purpose register 10. */
  r10: bigint;
  /** General-purpose register 11. */
  r11: bigint;
  /** General-purpose register 12. */
  r12: bigint;
  /** General-purpose register 13. */
  r13: bigint;
  /** General-purpose register 14. */
  r14: bigint;
  /** General-purpose register 15. */
  r15: bigint;
  /** Instruction pointer. */
  rip: bigint;
  /** RFLAGS (bit 1 is always set). */
  rflags: bigint;
}

/** struct kvm_segment */
export interface Segment {
  /** Linear base address. */
  base: bigint;
  /** Limit in bytes (already scaled by `g`). */
  limit: number;
  /** Selector as loaded into the segment register. */
  selector: number;
  /** Descriptor type (4 bits: code/data, accessed, readable/writable…). */
  type: number;
  /** Present bit (1/0). */
  present: number;
  /** Descriptor privilege level, 0-3. */
  dpl: number;
  /** Default operation size: 1 = 32-bit. */
  db: number;
  /** 1 for code/data, 0 for system segments. */
  s: number;
  /** 1 for a 64-bit code segment. */
  l: number;
  /** Granularity: 1 = 4 KiB units. */
  g: number;
  /** Available to software. */
  avl: number;
  /** 1 when the segment is unusable (a null selector). */
  unusable: number;
}

/** struct kvm_dtable */
export interface DescriptorTable {
  /** Linear base address. */
  base: bigint;
  /** Limit: size in bytes minus one. */
  limit: number;
}

/** struct kvm_sregs */
export interface Sregs {
  /** Code segment. */
  cs: Segment;
  /** Data segment. */
  ds: Segment;
  /** Extra segment. */
  es: Segment;
  /** FS segment. */
  fs: Segment;
  /** GS segment. */
  gs: Segment;
  /** Stack segment. */
  ss: Segment;
  /** Task register. */
  tr: Segment;
  /** Local descriptor table. */
  ldt: Segment;
  /** Global descriptor table. */
  gdt: DescriptorTable;
  /** Interrupt descriptor table. */
  idt: DescriptorTable;
  /** CR0 (PE, PG, …). */
  cr0: bigint;
  /** CR2: the last page-fault address. */
  cr2: bigint;
  /** CR3: the page-table root. */
  cr3: bigint;
  /** CR4 (PAE, …). */
  cr4: bigint;
  /** CR8: the task priority. */
  cr8: bigint;
  /** EFER MSR (LME, LMA, NXE, SCE). */
  efer: bigint;
  /** IA32_APIC_BASE MSR. */
  apicBase: bigint;
  /** 256 bits of pending external interrupts, as 4 bigints. */
  interruptBitmap: bigint[];
}

/** `T` as input: its 64-bit (bigint) fields also take a safe-integer number; every field optional. */
export type Loose<T> = { [K in keyof T]?: T[K] extends bigint ? bigint | number : T[K] };

/** What a 64-bit field accepts on the way in: a bigint, or a number when it is a safe integer. */
export type U64 = number | bigint;

/** setRegs() input: any subset of the registers, 64-bit values as bigint or number. */
export type RegsPatch = { [K in keyof Regs]?: U64 };

/** A partial segment for setSregs(): `base` may be a number too. */
export type SegmentPatch = Partial<Omit<Segment, 'base'>> & {
  /** Segment base. */
  base?: U64;
};

/** A partial update: segments may be partial too; unspecified fields keep their value. */
export type SregsPatch = {
  [K in keyof Sregs]?: Sregs[K] extends Segment ? SegmentPatch
    : Sregs[K] extends DescriptorTable ? {
      /** Table base. */
      base?: U64;
      /** Table limit. */
      limit?: number;
    }
      : Sregs[K] extends bigint ? U64 : Sregs[K] extends bigint[] ? U64[] : Sregs[K];
};

/** struct kvm_fpu (the parts a VMM sets) */
export interface Fpu {
  /** x87 registers, 8 × 16 bytes. */
  fpr: Uint8Array;
  /** x87 control word. */
  fcw: number;
  /** x87 status word. */
  fsw: number;
  /** Abridged x87 tag word. */
  ftwx: number;
  /** Opcode of the last x87 instruction. */
  lastOpcode: number;
  /** Instruction pointer of the last x87 instruction. */
  lastIp: bigint;
  /** Data pointer of the last x87 instruction. */
  lastDp: bigint;
  /** XMM0-15, 16 × 16 bytes. */
  xmm: Uint8Array;
  /** SSE control and status. */
  mxcsr: number;
}

/** One model-specific register. */
export interface MsrEntry {
  /** MSR number (ECX of rdmsr/wrmsr). */
  index: number;
  /** Its 64-bit value. */
  data: bigint;
}

/** setMsrs() input: `data` may be a number too. */
export interface MsrEntryInput {
  /** MSR number. */
  index: number;
  /** Value to write. */
  data: U64;
}

/** struct kvm_cpuid_entry2 */
export interface CpuidEntry {
  /** Leaf (EAX input). */
  function: number;
  /** Sub-leaf (ECX input), where the leaf has them. */
  index: number;
  /** KVM_CPUID_FLAG_* (significant index, …). */
  flags: number;
  /** EAX output. */
  eax: number;
  /** EBX output. */
  ebx: number;
  /** ECX output. */
  ecx: number;
  /** EDX output. */
  edx: number;
}

/** struct kvm_vcpu_events (flattened) */
export interface VcpuEvents {
  /** A pending or injected exception. */
  exception: {
    /** 1 when the exception is being delivered. */ injected: number;
    /** Vector. */ nr: number;
    /** 1 when `errorCode` is pushed. */ hasErrorCode: number;
    /** 1 when raised but not yet delivered. */ pending: number;
    /** The error code. */ errorCode: number;
  };
  /** A pending or injected external interrupt, and the interrupt shadow. */
  interrupt: {
    /** 1 when the interrupt is being delivered. */ injected: number;
    /** Vector. */ nr: number;
    /** 1 for a software interrupt (int n). */ soft: number;
    /** Interrupt shadow (after sti or mov ss). */ shadow: number;
  };
  /** NMI state. */
  nmi: {
    /** 1 when an NMI is being delivered. */ injected: number;
    /** 1 when an NMI waits. */ pending: number;
    /** 1 while NMIs are blocked. */ masked: number;
  };
  /** Vector of a pending start-up IPI. */
  sipiVector: number;
  /** KVM_VCPUEVENT_VALID_* flags. */
  flags: number;
  /** System-management mode state. */
  smi: {
    /** 1 while in SMM. */ smm: number;
    /** 1 when an SMI waits. */ pending: number;
    /** 1 when SMM was entered while NMIs were blocked. */ smmInsideNmi: number;
    /** 1 when an INIT arrived in SMM. */ latchedInit: number;
  };
  /** A pending triple fault. */
  tripleFault: {
    /** 1 when a triple fault waits. */ pending: number;
  };
  /** 1 when `exceptionPayload` is valid. */
  exceptionHasPayload: number;
  /** Exception payload (CR2 or DR6 for #PF/#DB). */
  exceptionPayload: bigint;
}

/** KVM_MP_STATE_* names */
export type MpState = 'runnable' | 'uninitialized' | 'init-received' | 'halted' | 'sipi-received' | 'stopped' | 'check-stop' | 'operating' | 'load';
