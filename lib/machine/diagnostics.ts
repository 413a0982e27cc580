// What the machine reports when a guest dies: the vCPU state that names the fault.
import type { Vcpu } from '../kvm/vcpu.js';

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** A register dump of `vcpu` (never throws: a closed or broken vCPU just says so). */
export function registerDump(vcpu: Vcpu): string {
  try {
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    const lines = [
      `vCPU ${vcpu.id}: rip=${hex(r.rip)} rsp=${hex(r.rsp)} rflags=${hex(r.rflags)}`,
      `  rax=${hex(r.rax)} rbx=${hex(r.rbx)} rcx=${hex(r.rcx)} rdx=${hex(r.rdx)} rsi=${hex(r.rsi)} rdi=${hex(r.rdi)} rbp=${hex(r.rbp)}`,
      `  cs=${hex(s.cs.selector)} base=${hex(s.cs.base)} l=${s.cs.l} db=${s.cs.db}  ss=${hex(s.ss.selector)}  ds=${hex(s.ds.selector)}`,
      `  cr0=${hex(s.cr0)} cr2=${hex(s.cr2)} cr3=${hex(s.cr3)} cr4=${hex(s.cr4)} efer=${hex(s.efer)}`,
      `  gdt=${hex(s.gdt.base)}/${hex(s.gdt.limit)} idt=${hex(s.idt.base)}/${hex(s.idt.limit)}`,
    ];
    return lines.join('\n');
  } catch (e) {
    return `vCPU ${vcpu.id}: state unavailable (${(e as Error).message})`;
  }
}
