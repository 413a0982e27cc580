// Encoders/decoders between the uapi structs (raw bytes from the shim) and the plain objects
// of regs.ts. Offsets come from native/layout.cc, never from this file.
import { InvalidArgumentError } from '../errors.js';
import { native, type Offsets } from '../native.js';
import type { CpuidEntry, DescriptorTable, Fpu, MsrEntry, MsrEntryInput, Regs, RegsPatch, Segment, Sregs, SregsPatch, VcpuEvents } from './regs.js';
import { u64, uint } from './field-check.js';

const REG_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11',
  'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;
const SEG_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const SEG_BYTE_FIELDS = ['type', 'present', 'dpl', 'db', 's', 'l', 'g', 'avl', 'unusable'] as const;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function L(): ReturnType<typeof native>['layout'] {
  return native().layout;
}

export function decodeRegs(b: Uint8Array): Regs {
  const o = L().kvm_regs;
  const v = dv(b);
  const r = {} as Regs;
  for (const n of REG_NAMES) r[n] = v.getBigUint64(o[n]!, true);
  return r;
}

/** Every register of `r` must be present; each is range-checked (ERR_INVALID_ARG naming it). */
export function encodeRegs(r: Regs | Required<RegsPatch>): Uint8Array {
  const o = L().kvm_regs;
  const b = new Uint8Array(o.size!);
  const v = dv(b);
  for (const n of REG_NAMES) v.setBigUint64(o[n]!, u64(n, r[n]), true);
  return b;
}

/** `cur` with `patch` applied; unknown register names are refused. */
export function mergeRegs(cur: Regs, patch: RegsPatch): Regs {
  if (patch === null || typeof patch !== 'object') throw new InvalidArgumentError('setRegs needs an object of registers');
  const out = { ...cur };
  for (const [k, val] of Object.entries(patch)) {
    if (val === undefined) continue;
    if (!(REG_NAMES as readonly string[]).includes(k)) throw new InvalidArgumentError(`unknown register ${k} (known: ${REG_NAMES.join(', ')})`);
    out[k as keyof Regs] = u64(k, val);
  }
  return out;
}

function decodeSegment(v: DataView, at: number, o: Offsets): Segment {
  const s = {
    base: v.getBigUint64(at + o.base!, true),
    limit: v.getUint32(at + o.limit!, true),
    selector: v.getUint16(at + o.selector!, true),
  } as Segment;
  for (const f of SEG_BYTE_FIELDS) s[f] = v.getUint8(at + o[f]!);
  return s;
}

function encodeSegment(v: DataView, at: number, o: Offsets, s: Segment, name: string): void {
  v.setBigUint64(at + o.base!, u64(`${name}.base`, s.base), true);
  v.setUint32(at + o.limit!, uint(`${name}.limit`, s.limit, 32), true);
  v.setUint16(at + o.selector!, uint(`${name}.selector`, s.selector, 16), true);
  for (const f of SEG_BYTE_FIELDS) v.setUint8(at + o[f]!, uint(`${name}.${f}`, s[f], 8));
}

export function decodeSregs(b: Uint8Array): Sregs {
  const o = L().kvm_sregs;
  const so = L().kvm_segment;
  const v = dv(b);
  const dt = (at: number): DescriptorTable => ({
    base: v.getBigUint64(at + o.dtable_base!, true),
    limit: v.getUint16(at + o.dtable_limit!, true),
  });
  const s = {} as Sregs;
  for (const n of SEG_NAMES) s[n] = decodeSegment(v, o[n]!, so);
  s.gdt = dt(o.gdt!);
  s.idt = dt(o.idt!);
  s.cr0 = v.getBigUint64(o.cr0!, true);
  s.cr2 = v.getBigUint64(o.cr2!, true);
  s.cr3 = v.getBigUint64(o.cr3!, true);
  s.cr4 = v.getBigUint64(o.cr4!, true);
  s.cr8 = v.getBigUint64(o.cr8!, true);
  s.efer = v.getBigUint64(o.efer!, true);
  s.apicBase = v.getBigUint64(o.apic_base!, true);
  s.interruptBitmap = [0, 1, 2, 3].map((i) => v.getBigUint64(o.interrupt_bitmap! + i * 8, true));
  return s;
}

export function encodeSregs(s: Sregs): Uint8Array {
  const o = L().kvm_sregs;
  const so = L().kvm_segment;
  const b = new Uint8Array(o.size!);
  const v = dv(b);
  for (const n of SEG_NAMES) encodeSegment(v, o[n]!, so, s[n], n);
  for (const n of ['gdt', 'idt'] as const) {
    v.setBigUint64(o[n]! + o.dtable_base!, u64(`${n}.base`, s[n].base), true);
    v.setUint16(o[n]! + o.dtable_limit!, uint(`${n}.limit`, s[n].limit, 16), true);
  }
  v.setBigUint64(o.cr0!, u64('cr0', s.cr0), true);
  v.setBigUint64(o.cr2!, u64('cr2', s.cr2), true);
  v.setBigUint64(o.cr3!, u64('cr3', s.cr3), true);
  v.setBigUint64(o.cr4!, u64('cr4', s.cr4), true);
  v.setBigUint64(o.cr8!, u64('cr8', s.cr8), true);
  v.setBigUint64(o.efer!, u64('efer', s.efer), true);
  v.setBigUint64(o.apic_base!, u64('apicBase', s.apicBase), true);
  if (!Array.isArray(s.interruptBitmap) || s.interruptBitmap.length !== 4) {
    throw new InvalidArgumentError('interruptBitmap must be an array of 4 64-bit words');
  }
  s.interruptBitmap.forEach((w, i) => v.setBigUint64(o.interrupt_bitmap! + i * 8, u64(`interruptBitmap[${i}]`, w), true));
  return b;
}

/**
 * Apply a partial update (segments and tables merge field by field). Values are checked when
 * the result is encoded (encodeSregs), with the field's name.
 */
export function mergeSregs(cur: Sregs, patch: SregsPatch): Sregs {
  if (patch === null || typeof patch !== 'object') throw new InvalidArgumentError('setSregs needs an object');
  const out: Sregs = { ...cur };
  for (const [k, val] of Object.entries(patch) as Array<[keyof Sregs, unknown]>) {
    if (val === undefined) continue;
    if (!Object.hasOwn(cur, k)) throw new InvalidArgumentError(`unknown sregs field ${k} (known: ${Object.keys(cur).join(', ')})`);
    const c = cur[k];
    if (typeof c === 'object' && c !== null && !Array.isArray(c) && typeof val === 'object') {
      (out as unknown as Record<string, unknown>)[k] = { ...c, ...(val as object) };
    } else {
      (out as unknown as Record<string, unknown>)[k] = val;
    }
  }
  return out;
}

export function decodeFpu(b: Uint8Array): Fpu {
  const o = L().kvm_fpu;
  const v = dv(b);
  return {
    fpr: b.slice(o.fpr!, o.fpr! + 128),
    fcw: v.getUint16(o.fcw!, true),
    fsw: v.getUint16(o.fsw!, true),
    ftwx: v.getUint8(o.ftwx!),
    lastOpcode: v.getUint16(o.last_opcode!, true),
    lastIp: v.getBigUint64(o.last_ip!, true),
    lastDp: v.getBigUint64(o.last_dp!, true),
    xmm: b.slice(o.xmm!, o.xmm! + 256),
    mxcsr: v.getUint32(o.mxcsr!, true),
  };
}

export function encodeFpu(f: Fpu): Uint8Array {
  const o = L().kvm_fpu;
  const b = new Uint8Array(o.size!);
  const v = dv(b);
  b.set(f.fpr.subarray(0, 128), o.fpr!);
  v.setUint16(o.fcw!, uint('fcw', f.fcw, 16), true);
  v.setUint16(o.fsw!, uint('fsw', f.fsw, 16), true);
  v.setUint8(o.ftwx!, uint('ftwx', f.ftwx, 8));
  v.setUint16(o.last_opcode!, uint('lastOpcode', f.lastOpcode, 16), true);
  v.setBigUint64(o.last_ip!, u64('lastIp', f.lastIp), true);
  v.setBigUint64(o.last_dp!, u64('lastDp', f.lastDp), true);
  b.set(f.xmm.subarray(0, 256), o.xmm!);
  v.setUint32(o.mxcsr!, uint('mxcsr', f.mxcsr, 32), true);
  return b;
}

export function decodeCpuid(b: Uint8Array): CpuidEntry[] {
  const o = L().kvm_cpuid_entry2;
  const size = o.size!;
  const v = dv(b);
  const out: CpuidEntry[] = [];
  for (let at = 0; at + size <= b.length; at += size) {
    out.push({
      function: v.getUint32(at + o.function!, true),
      index: v.getUint32(at + o.index!, true),
      flags: v.getUint32(at + o.flags!, true),
      eax: v.getUint32(at + o.eax!, true),
      ebx: v.getUint32(at + o.ebx!, true),
      ecx: v.getUint32(at + o.ecx!, true),
      edx: v.getUint32(at + o.edx!, true),
    });
  }
  return out;
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const o = L().kvm_cpuid_entry2;
  const size = o.size!;
  const b = new Uint8Array(size * entries.length);
  const v = dv(b);
  entries.forEach((e, i) => {
    const at = i * size;
    // Signed 32-bit values (results of `|` and `<<`) are bit patterns here, as before.
    const u32 = (k: 'function' | 'index' | 'flags' | 'eax' | 'ebx' | 'ecx' | 'edx'): number => {
      const x = e[k];
      return uint(`cpuid[${i}].${k}`, typeof x === 'number' && Number.isInteger(x) && x < 0 && x >= -0x8000_0000 ? x >>> 0 : x, 32);
    };
    v.setUint32(at + o.function!, u32('function'), true);
    v.setUint32(at + o.index!, u32('index'), true);
    v.setUint32(at + o.flags!, u32('flags'), true);
    v.setUint32(at + o.eax!, u32('eax'), true);
    v.setUint32(at + o.ebx!, u32('ebx'), true);
    v.setUint32(at + o.ecx!, u32('ecx'), true);
    v.setUint32(at + o.edx!, u32('edx'), true);
  });
  return b;
}

/** struct kvm_msrs with `entries` (data ignored for reads). */
export function encodeMsrs(entries: readonly (MsrEntry | MsrEntryInput)[]): Uint8Array {
  const o = L().kvm_msrs;
  const b = new Uint8Array(o.entries! + entries.length * o.entry_size!);
  const v = dv(b);
  v.setUint32(o.nmsrs!, entries.length, true);
  entries.forEach((e, i) => {
    const at = o.entries! + i * o.entry_size!;
    const index = uint(`msrs[${i}].index`, e.index, 32);
    v.setUint32(at + o.entry_index!, index, true);
    v.setBigUint64(at + o.entry_data!, u64(`MSR 0x${index.toString(16)} data`, e.data), true);
  });
  return b;
}

export function decodeMsrs(b: Uint8Array, count: number): MsrEntry[] {
  const o = L().kvm_msrs;
  const v = dv(b);
  const out: MsrEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = o.entries! + i * o.entry_size!;
    out.push({ index: v.getUint32(at + o.entry_index!, true), data: v.getBigUint64(at + o.entry_data!, true) });
  }
  return out;
}

export function decodeVcpuEvents(b: Uint8Array): VcpuEvents {
  const o = L().kvm_vcpu_events;
  const v = dv(b);
  const u8 = (k: string): number => v.getUint8(o[k]!);
  return {
    exception: { injected: u8('exception_injected'), nr: u8('exception_nr'), hasErrorCode: u8('exception_has_error_code'),
      pending: u8('exception_pending'), errorCode: v.getUint32(o.exception_error_code!, true) },
    interrupt: { injected: u8('interrupt_injected'), nr: u8('interrupt_nr'), soft: u8('interrupt_soft'), shadow: u8('interrupt_shadow') },
    nmi: { injected: u8('nmi_injected'), pending: u8('nmi_pending'), masked: u8('nmi_masked') },
    sipiVector: v.getUint32(o.sipi_vector!, true),
    flags: v.getUint32(o.flags!, true),
    smi: { smm: u8('smi_smm'), pending: u8('smi_pending'), smmInsideNmi: u8('smi_smm_inside_nmi'), latchedInit: u8('smi_latched_init') },
    tripleFault: { pending: u8('triple_fault_pending') },
    exceptionHasPayload: u8('exception_has_payload'),
    exceptionPayload: v.getBigUint64(o.exception_payload!, true),
  };
}

export function encodeVcpuEvents(e: VcpuEvents): Uint8Array {
  const o = L().kvm_vcpu_events;
  const b = new Uint8Array(o.size!);
  const v = dv(b);
  const s8 = (k: string, x: number): void => v.setUint8(o[k]!, uint(k, x, 8));
  s8('exception_injected', e.exception.injected);
  s8('exception_nr', e.exception.nr);
  s8('exception_has_error_code', e.exception.hasErrorCode);
  s8('exception_pending', e.exception.pending);
  v.setUint32(o.exception_error_code!, uint('exception.errorCode', e.exception.errorCode, 32), true);
  s8('interrupt_injected', e.interrupt.injected);
  s8('interrupt_nr', e.interrupt.nr);
  s8('interrupt_soft', e.interrupt.soft);
  s8('interrupt_shadow', e.interrupt.shadow);
  s8('nmi_injected', e.nmi.injected);
  s8('nmi_pending', e.nmi.pending);
  s8('nmi_masked', e.nmi.masked);
  v.setUint32(o.sipi_vector!, uint('sipiVector', e.sipiVector, 32), true);
  v.setUint32(o.flags!, uint('flags', e.flags, 32), true);
  s8('smi_smm', e.smi.smm);
  s8('smi_pending', e.smi.pending);
  s8('smi_smm_inside_nmi', e.smi.smmInsideNmi);
  s8('smi_latched_init', e.smi.latchedInit);
  s8('triple_fault_pending', e.tripleFault.pending);
  s8('exception_has_payload', e.exceptionHasPayload);
  v.setBigUint64(o.exception_payload!, u64('exceptionPayload', e.exceptionPayload), true);
  return b;
}
