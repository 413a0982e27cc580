// The state KVM keeps for a vCPU and a VM, as KVM's own structs (bytes), so that a snapshot can
// save and load it whole without knowing its layout. Vcpu.saveState()/loadState() and
// Vm.saveState()/loadState() produce and consume these; lib/machine/snapshot.ts only stores them.
import type { MsrEntry } from './regs.js';

/** A vCPU's architectural state, as the KVM_GET_* ioctls return it. */
export interface VcpuState {
  /** The vCPU's id. */
  id: number;
  /** struct kvm_regs. */
  regs: Uint8Array;
  /** struct kvm_sregs. */
  sregs: Uint8Array;
  /** struct kvm_xsave, or null where KVM refuses it (kvm_pvm): then `fpu` carries x87/SSE. */
  xsave: Uint8Array | null;
  /** struct kvm_fpu. */
  fpu: Uint8Array;
  /** struct kvm_xcrs, or null where KVM refuses it. */
  xcrs: Uint8Array | null;
  /** Every MSR of KVM_GET_MSR_INDEX_LIST the vCPU would read. */
  msrs: MsrEntry[];
  /** struct kvm_lapic_state. */
  lapic: Uint8Array;
  /** struct kvm_vcpu_events. */
  events: Uint8Array;
  /** KVM_GET_MP_STATE, the raw KVM_MP_STATE_* number. */
  mpState: number;
}

/** The in-kernel devices of a VM: both PICs and the IOAPIC, the PIT, kvmclock. */
export interface VmState {
  /** struct kvm_irqchip for the master PIC, the slave PIC and the IOAPIC, in that order. */
  irqchip: Uint8Array[];
  /** struct kvm_pit_state2. */
  pit: Uint8Array;
  /** struct kvm_clock_data. */
  clock: Uint8Array;
}

/** KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC (struct kvm_irqchip.chip_id). */
export const IRQCHIP_IDS = [0, 1, 2] as const;
/** struct kvm_clock_data.flags: cleared on load so the clock resumes at the saved value. */
export const CLOCK_FLAGS_OFFSET = 8;
/** KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR: GET does not set them. */
export const VCPUEVENT_LOAD_FLAGS = 0x1 | 0x2;
