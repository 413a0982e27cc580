// Per-process answers of /dev/kvm that cannot change while the module is loaded: asking again
// costs an ioctl plus decoding for every machine, which adds up inside the nested lab (every
// machine built from a snapshot pays it on its way to the first shell answer).
import type { Kvm } from '../kvm/kvm.js';
import type { CpuidEntry } from '../kvm/regs.js';

const supportedCpuid = new Map<string, readonly CpuidEntry[]>();

/** KVM_GET_SUPPORTED_CPUID of `kvm`'s device, asked once per path. Callers must not mutate the entries. */
export function cachedSupportedCpuid(kvm: Kvm): readonly CpuidEntry[] {
  let entries = supportedCpuid.get(kvm.path);
  if (entries === undefined) {
    entries = kvm.getSupportedCpuid();
    supportedCpuid.set(kvm.path, entries);
  }
  return entries;
}
