// Per-vCPU CPUID (from KVM_GET_SUPPORTED_CPUID) and the MSR values a vCPU starts with.
// CPUID leaves and bits: Intel SDM Vol. 2A "CPUID", AMD APM Vol. 3 appendix E, and Linux's
// Documentation/virt/kvm/x86/cpuid.rst for the hypervisor leaves.
import { InvalidArgumentError } from '../errors.js';
import type { CpuidEntry, MsrEntry } from '../kvm/regs.js';

/** kvm_cpuid_entry2.flags: the entry is for one subleaf (index matters). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

// Leaf 1
const LEAF1_ECX_XSAVE = 1 << 26;
const LEAF1_ECX_OSXSAVE = 1 << 27;
const LEAF1_ECX_HYPERVISOR = 1 << 31;
const LEAF1_EDX_HTT = 1 << 28;

export const KVM_CPUID_SIGNATURE = 0x40000000;
export const KVM_CPUID_FEATURES = 0x40000001;
/** "KVMKVMKVM\0\0\0" as EBX, ECX, EDX. */
const KVM_SIGNATURE = [0x4b4d564b, 0x564b4d56, 0x0000004d] as const;

// x2APIC topology (leaves 0xB and 0x1F) level types, ECX[15:8].
const LEVEL_SMT = 1;
const LEVEL_CORE = 2;

export interface CpuidOptions {
  /** This vCPU's index; we use it as its (x2)APIC id. */
  vcpuId: number;
  /** vCPUs in the VM: one package of `cpus` single-thread cores. */
  cpus: number;
  /**
   * Hide XSAVE (leaf 1 ECX bits 26/27, leaf 0xD). Needed in the nested TCG lab, whose SVM
   * does not intercept XSETBV; the guest kernel then uses FXSAVE.
   */
  clearXsave?: boolean;
}

/** Bits needed to number `n` things (the APIC-id shift for a topology level). */
function bitsFor(n: number): number {
  return n <= 1 ? 0 : Math.ceil(Math.log2(n));
}

/** CPUID for one vCPU, built from the host's supported list; the input is not modified. */
export function buildCpuid(supported: readonly CpuidEntry[], opts: CpuidOptions): CpuidEntry[] {
  const { vcpuId, cpus } = opts;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255) {
    throw new InvalidArgumentError(`cpus must be an integer 1..255 (xAPIC ids are 8 bits), got ${cpus}`);
  }
  if (!Number.isInteger(vcpuId) || vcpuId < 0 || vcpuId >= cpus) {
    throw new InvalidArgumentError(`vcpuId must be an integer 0..${cpus - 1}, got ${vcpuId}`);
  }
  const maxBasic = supported.find((e) => e.function === 0)?.eax ?? 0;
  const out: CpuidEntry[] = [];
  const topologyDone = new Set<number>();
  for (const src of supported) {
    const e = { ...src };
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package (valid with HTT).
        e.ebx = ((vcpuId << 24) | ((cpus & 0xff) << 16) | (e.ebx & 0xffff)) >>> 0;
        e.ecx = (e.ecx | LEAF1_ECX_HYPERVISOR) >>> 0;
        if (opts.clearXsave) e.ecx = (e.ecx & ~(LEAF1_ECX_XSAVE | LEAF1_ECX_OSXSAVE)) >>> 0;
        e.edx = cpus > 1 ? (e.edx | LEAF1_EDX_HTT) >>> 0 : (e.edx & ~LEAF1_EDX_HTT) >>> 0;
        break;
      case 4: {
        // Deterministic cache parameters: EAX[31:26] cores per package - 1, EAX[25:14] threads
        // sharing the cache - 1 (one thread per core; only the last level is package-wide).
        const level = (e.eax >> 5) & 7;
        const sharing = level >= 3 ? cpus - 1 : 0;
        e.eax = ((e.eax & 0x3fff) | ((sharing & 0xfff) << 14) | (((cpus - 1) & 0x3f) << 26)) >>> 0;
        break;
      }
      case 0xb:
      case 0x1f:
        // Rewritten whole below, once per leaf.
        if (!topologyDone.has(e.function)) {
          topologyDone.add(e.function);
          out.push(...topologyLeaf(e.function, vcpuId, cpus));
        }
        continue;
      case 0xd:
        if (opts.clearXsave) continue;
        break;
      case KVM_CPUID_SIGNATURE:
        continue; // rebuilt below so the signature is always KVM's
      default:
        break;
    }
    out.push(e);
  }
  // A topology leaf the host lists in leaf 0's range but did not enumerate still gets ours.
  if (maxBasic >= 0xb && !topologyDone.has(0xb)) out.push(...topologyLeaf(0xb, vcpuId, cpus));
  const features = supported.find((e) => e.function === KVM_CPUID_FEATURES);
  out.push({
    function: KVM_CPUID_SIGNATURE, index: 0, flags: 0,
    eax: features !== undefined ? KVM_CPUID_FEATURES : KVM_CPUID_SIGNATURE,
    ebx: KVM_SIGNATURE[0], ecx: KVM_SIGNATURE[1], edx: KVM_SIGNATURE[2],
  });
  return out;
}

/** Leaf 0xB / 0x1F subleaves: SMT level (1 thread), core level (`cpus` cores), then the end marker. */
function topologyLeaf(fn: number, apicId: number, cpus: number): CpuidEntry[] {
  const f = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  return [
    { function: fn, index: 0, flags: f, eax: 0, ebx: 1, ecx: (LEVEL_SMT << 8) | 0, edx: apicId },
    { function: fn, index: 1, flags: f, eax: bitsFor(cpus), ebx: cpus, ecx: (LEVEL_CORE << 8) | 1, edx: apicId },
    { function: fn, index: 2, flags: f, eax: 0, ebx: 0, ecx: 2, edx: apicId },
  ];
}

// MSR indexes (SDM Vol. 4).
export const MSR_IA32_TSC = 0x10;
export const MSR_IA32_SYSENTER_CS = 0x174;
export const MSR_IA32_SYSENTER_ESP = 0x175;
export const MSR_IA32_SYSENTER_EIP = 0x176;
export const MSR_IA32_MISC_ENABLE = 0x1a0;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SYSCALL_MASK = 0xc0000084;
export const MSR_KERNEL_GS_BASE = 0xc0000102;

/** IA32_MISC_ENABLE.FAST_STRING: what firmware sets; Linux warns when it finds it clear. */
export const MISC_ENABLE_FAST_STRING = 1n << 0n;
/** MTRRdefType: E (MTRRs enabled) with default type write-back, as firmware leaves it. */
export const MTRR_DEF_TYPE_E_WB = (1n << 11n) | 6n;

/** MSR values for a vCPU at kernel entry: syscall MSRs cleared, firmware-like defaults. */
export function bootMsrs(): MsrEntry[] {
  return [
    { index: MSR_IA32_SYSENTER_CS, data: 0n },
    { index: MSR_IA32_SYSENTER_ESP, data: 0n },
    { index: MSR_IA32_SYSENTER_EIP, data: 0n },
    { index: MSR_STAR, data: 0n },
    { index: MSR_CSTAR, data: 0n },
    { index: MSR_KERNEL_GS_BASE, data: 0n },
    { index: MSR_SYSCALL_MASK, data: 0n },
    { index: MSR_LSTAR, data: 0n },
    { index: MSR_IA32_TSC, data: 0n },
    { index: MSR_IA32_MISC_ENABLE, data: MISC_ENABLE_FAST_STRING },
    { index: MSR_MTRR_DEF_TYPE, data: MTRR_DEF_TYPE_E_WB },
  ];
}
