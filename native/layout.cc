// Struct layouts and constants from the uapi headers, exported once so the TS side never
// hard-codes an offset (DESIGN §3).
#include <linux/if_tun.h>
#include <linux/kvm.h>
// <linux/virtio_net.h> names a field `class` (its control-queue header), a keyword in C++.
#define class virtio_class
#include <linux/virtio_net.h>
#undef class
#include <stddef.h>

#include "common.h"
#include "ioctls.h"

namespace nkvm {
namespace {

#define OFF(obj, type, field) obj.Set(#field, Napi::Number::New(env, offsetof(type, field)))
#define NAMED_OFF(obj, name, type, field) obj.Set(name, Napi::Number::New(env, offsetof(type, field)))
#define SIZE(obj, type) obj.Set("size", Napi::Number::New(env, sizeof(type)))
#define CONST(obj, name) obj.Set(#name, Napi::Number::New(env, name))

Napi::Object Run(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_run);
  OFF(o, kvm_run, request_interrupt_window);
  OFF(o, kvm_run, immediate_exit);
  OFF(o, kvm_run, exit_reason);
  OFF(o, kvm_run, ready_for_interrupt_injection);
  OFF(o, kvm_run, if_flag);
  OFF(o, kvm_run, cr8);
  OFF(o, kvm_run, apic_base);
  NAMED_OFF(o, "io_direction", kvm_run, io.direction);
  NAMED_OFF(o, "io_size", kvm_run, io.size);
  NAMED_OFF(o, "io_port", kvm_run, io.port);
  NAMED_OFF(o, "io_count", kvm_run, io.count);
  NAMED_OFF(o, "io_data_offset", kvm_run, io.data_offset);
  NAMED_OFF(o, "mmio_phys_addr", kvm_run, mmio.phys_addr);
  NAMED_OFF(o, "mmio_data", kvm_run, mmio.data);
  NAMED_OFF(o, "mmio_len", kvm_run, mmio.len);
  NAMED_OFF(o, "mmio_is_write", kvm_run, mmio.is_write);
  NAMED_OFF(o, "hw_hardware_exit_reason", kvm_run, hw.hardware_exit_reason);
  NAMED_OFF(o, "fail_entry_reason", kvm_run, fail_entry.hardware_entry_failure_reason);
  NAMED_OFF(o, "fail_entry_cpu", kvm_run, fail_entry.cpu);
  NAMED_OFF(o, "internal_suberror", kvm_run, internal.suberror);
  NAMED_OFF(o, "internal_ndata", kvm_run, internal.ndata);
  NAMED_OFF(o, "internal_data", kvm_run, internal.data);
  NAMED_OFF(o, "system_event_type", kvm_run, system_event.type);
  NAMED_OFF(o, "system_event_ndata", kvm_run, system_event.ndata);
  return o;
}

Napi::Object Regs(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_regs);
  OFF(o, kvm_regs, rax); OFF(o, kvm_regs, rbx); OFF(o, kvm_regs, rcx); OFF(o, kvm_regs, rdx);
  OFF(o, kvm_regs, rsi); OFF(o, kvm_regs, rdi); OFF(o, kvm_regs, rsp); OFF(o, kvm_regs, rbp);
  OFF(o, kvm_regs, r8); OFF(o, kvm_regs, r9); OFF(o, kvm_regs, r10); OFF(o, kvm_regs, r11);
  OFF(o, kvm_regs, r12); OFF(o, kvm_regs, r13); OFF(o, kvm_regs, r14); OFF(o, kvm_regs, r15);
  OFF(o, kvm_regs, rip); OFF(o, kvm_regs, rflags);
  return o;
}

Napi::Object Segment(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_segment);
  OFF(o, kvm_segment, base); OFF(o, kvm_segment, limit); OFF(o, kvm_segment, selector);
  OFF(o, kvm_segment, type); OFF(o, kvm_segment, present); OFF(o, kvm_segment, dpl);
  OFF(o, kvm_segment, db); OFF(o, kvm_segment, s); OFF(o, kvm_segment, l); OFF(o, kvm_segment, g);
  OFF(o, kvm_segment, avl); OFF(o, kvm_segment, unusable);
  return o;
}

Napi::Object Sregs(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_sregs);
  OFF(o, kvm_sregs, cs); OFF(o, kvm_sregs, ds); OFF(o, kvm_sregs, es); OFF(o, kvm_sregs, fs);
  OFF(o, kvm_sregs, gs); OFF(o, kvm_sregs, ss); OFF(o, kvm_sregs, tr); OFF(o, kvm_sregs, ldt);
  OFF(o, kvm_sregs, gdt); OFF(o, kvm_sregs, idt);
  OFF(o, kvm_sregs, cr0); OFF(o, kvm_sregs, cr2); OFF(o, kvm_sregs, cr3); OFF(o, kvm_sregs, cr4);
  OFF(o, kvm_sregs, cr8); OFF(o, kvm_sregs, efer); OFF(o, kvm_sregs, apic_base);
  OFF(o, kvm_sregs, interrupt_bitmap);
  o.Set("dtable_base", Napi::Number::New(env, offsetof(kvm_dtable, base)));
  o.Set("dtable_limit", Napi::Number::New(env, offsetof(kvm_dtable, limit)));
  return o;
}

Napi::Object Fpu(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_fpu);
  OFF(o, kvm_fpu, fpr); OFF(o, kvm_fpu, fcw); OFF(o, kvm_fpu, fsw); OFF(o, kvm_fpu, ftwx);
  OFF(o, kvm_fpu, last_opcode); OFF(o, kvm_fpu, last_ip); OFF(o, kvm_fpu, last_dp);
  OFF(o, kvm_fpu, xmm); OFF(o, kvm_fpu, mxcsr);
  return o;
}

Napi::Object CpuidEntry(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_cpuid_entry2);
  o.Set("function", Napi::Number::New(env, offsetof(kvm_cpuid_entry2, function)));
  OFF(o, kvm_cpuid_entry2, index); OFF(o, kvm_cpuid_entry2, flags);
  OFF(o, kvm_cpuid_entry2, eax); OFF(o, kvm_cpuid_entry2, ebx);
  OFF(o, kvm_cpuid_entry2, ecx); OFF(o, kvm_cpuid_entry2, edx);
  return o;
}

Napi::Object Msrs(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, nkvm_msrs);
  OFF(o, nkvm_msrs, nmsrs);
  OFF(o, nkvm_msrs, entries);
  o.Set("entry_size", Napi::Number::New(env, sizeof(kvm_msr_entry)));
  o.Set("entry_index", Napi::Number::New(env, offsetof(kvm_msr_entry, index)));
  o.Set("entry_data", Napi::Number::New(env, offsetof(kvm_msr_entry, data)));
  return o;
}

Napi::Object Events(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  SIZE(o, kvm_vcpu_events);
  NAMED_OFF(o, "exception_injected", kvm_vcpu_events, exception.injected);
  NAMED_OFF(o, "exception_nr", kvm_vcpu_events, exception.nr);
  NAMED_OFF(o, "exception_has_error_code", kvm_vcpu_events, exception.has_error_code);
  NAMED_OFF(o, "exception_pending", kvm_vcpu_events, exception.pending);
  NAMED_OFF(o, "exception_error_code", kvm_vcpu_events, exception.error_code);
  NAMED_OFF(o, "interrupt_injected", kvm_vcpu_events, interrupt.injected);
  NAMED_OFF(o, "interrupt_nr", kvm_vcpu_events, interrupt.nr);
  NAMED_OFF(o, "interrupt_soft", kvm_vcpu_events, interrupt.soft);
  NAMED_OFF(o, "interrupt_shadow", kvm_vcpu_events, interrupt.shadow);
  NAMED_OFF(o, "nmi_injected", kvm_vcpu_events, nmi.injected);
  NAMED_OFF(o, "nmi_pending", kvm_vcpu_events, nmi.pending);
  NAMED_OFF(o, "nmi_masked", kvm_vcpu_events, nmi.masked);
  OFF(o, kvm_vcpu_events, sipi_vector);
  OFF(o, kvm_vcpu_events, flags);
  NAMED_OFF(o, "smi_smm", kvm_vcpu_events, smi.smm);
  NAMED_OFF(o, "smi_pending", kvm_vcpu_events, smi.pending);
  NAMED_OFF(o, "smi_smm_inside_nmi", kvm_vcpu_events, smi.smm_inside_nmi);
  NAMED_OFF(o, "smi_latched_init", kvm_vcpu_events, smi.latched_init);
  NAMED_OFF(o, "triple_fault_pending", kvm_vcpu_events, triple_fault.pending);
  OFF(o, kvm_vcpu_events, exception_has_payload);
  OFF(o, kvm_vcpu_events, exception_payload);
  return o;
}

Napi::Object Stats(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("header_size", Napi::Number::New(env, sizeof(kvm_stats_header)));
  o.Set("header_flags", Napi::Number::New(env, offsetof(kvm_stats_header, flags)));
  o.Set("header_name_size", Napi::Number::New(env, offsetof(kvm_stats_header, name_size)));
  o.Set("header_num_desc", Napi::Number::New(env, offsetof(kvm_stats_header, num_desc)));
  o.Set("header_id_offset", Napi::Number::New(env, offsetof(kvm_stats_header, id_offset)));
  o.Set("header_desc_offset", Napi::Number::New(env, offsetof(kvm_stats_header, desc_offset)));
  o.Set("header_data_offset", Napi::Number::New(env, offsetof(kvm_stats_header, data_offset)));
  o.Set("desc_size", Napi::Number::New(env, sizeof(nkvm_stats_desc)));
  o.Set("desc_flags", Napi::Number::New(env, offsetof(nkvm_stats_desc, flags)));
  o.Set("desc_exponent", Napi::Number::New(env, offsetof(nkvm_stats_desc, exponent)));
  o.Set("desc_size_field", Napi::Number::New(env, offsetof(nkvm_stats_desc, size)));
  o.Set("desc_offset", Napi::Number::New(env, offsetof(nkvm_stats_desc, offset)));
  o.Set("desc_bucket_size", Napi::Number::New(env, offsetof(nkvm_stats_desc, bucket_size)));
  o.Set("desc_name", Napi::Number::New(env, offsetof(nkvm_stats_desc, name)));
  return o;
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  CONST(c, KVM_API_VERSION);
  // exit reasons
  CONST(c, KVM_EXIT_UNKNOWN); CONST(c, KVM_EXIT_EXCEPTION); CONST(c, KVM_EXIT_IO);
  CONST(c, KVM_EXIT_HYPERCALL); CONST(c, KVM_EXIT_DEBUG); CONST(c, KVM_EXIT_HLT);
  CONST(c, KVM_EXIT_MMIO); CONST(c, KVM_EXIT_IRQ_WINDOW_OPEN); CONST(c, KVM_EXIT_SHUTDOWN);
  CONST(c, KVM_EXIT_FAIL_ENTRY); CONST(c, KVM_EXIT_INTR); CONST(c, KVM_EXIT_SET_TPR);
  CONST(c, KVM_EXIT_TPR_ACCESS); CONST(c, KVM_EXIT_NMI); CONST(c, KVM_EXIT_INTERNAL_ERROR);
  CONST(c, KVM_EXIT_OSI); CONST(c, KVM_EXIT_WATCHDOG); CONST(c, KVM_EXIT_EPR);
  CONST(c, KVM_EXIT_SYSTEM_EVENT); CONST(c, KVM_EXIT_IOAPIC_EOI); CONST(c, KVM_EXIT_HYPERV);
  CONST(c, KVM_EXIT_X86_RDMSR); CONST(c, KVM_EXIT_X86_WRMSR); CONST(c, KVM_EXIT_DIRTY_RING_FULL);
  CONST(c, KVM_EXIT_IO_IN); CONST(c, KVM_EXIT_IO_OUT);
  CONST(c, KVM_SYSTEM_EVENT_SHUTDOWN); CONST(c, KVM_SYSTEM_EVENT_RESET); CONST(c, KVM_SYSTEM_EVENT_CRASH);
  CONST(c, KVM_INTERNAL_ERROR_EMULATION); CONST(c, KVM_INTERNAL_ERROR_SIMUL_EX);
  CONST(c, KVM_INTERNAL_ERROR_DELIVERY_EV);
  // capabilities
  CONST(c, KVM_CAP_IRQCHIP); CONST(c, KVM_CAP_HLT); CONST(c, KVM_CAP_USER_MEMORY);
  CONST(c, KVM_CAP_SET_TSS_ADDR); CONST(c, KVM_CAP_VAPIC); CONST(c, KVM_CAP_EXT_CPUID);
  CONST(c, KVM_CAP_NR_VCPUS); CONST(c, KVM_CAP_NR_MEMSLOTS); CONST(c, KVM_CAP_PIT);
  CONST(c, KVM_CAP_PIT2); CONST(c, KVM_CAP_PIT_STATE2); CONST(c, KVM_CAP_MP_STATE);
  CONST(c, KVM_CAP_IRQFD); CONST(c, KVM_CAP_IOEVENTFD); CONST(c, KVM_CAP_SET_IDENTITY_MAP_ADDR);
  CONST(c, KVM_CAP_ADJUST_CLOCK); CONST(c, KVM_CAP_VCPU_EVENTS); CONST(c, KVM_CAP_XCRS);
  CONST(c, KVM_CAP_XSAVE); CONST(c, KVM_CAP_TSC_CONTROL); CONST(c, KVM_CAP_MAX_VCPUS);
  CONST(c, KVM_CAP_MAX_VCPU_ID); CONST(c, KVM_CAP_IMMEDIATE_EXIT); CONST(c, KVM_CAP_BINARY_STATS_FD);
  CONST(c, KVM_CAP_READONLY_MEM); CONST(c, KVM_CAP_IRQ_ROUTING); CONST(c, KVM_CAP_SYNC_MMU);
  CONST(c, KVM_CAP_USER_NMI); CONST(c, KVM_CAP_DESTROY_MEMORY_REGION_WORKS);
  CONST(c, KVM_CAP_JOIN_MEMORY_REGIONS_WORKS); CONST(c, KVM_CAP_X86_ROBUST_SINGLESTEP);
  CONST(c, KVM_CAP_SPLIT_IRQCHIP); CONST(c, KVM_CAP_MULTI_ADDRESS_SPACE);
  CONST(c, KVM_CAP_GET_TSC_KHZ); CONST(c, KVM_CAP_KVMCLOCK_CTRL); CONST(c, KVM_CAP_DIRTY_LOG_RING);
  CONST(c, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
  CONST(c, KVM_CAP_COALESCED_MMIO); CONST(c, KVM_CAP_COALESCED_PIO);
  CONST(c, KVM_CAP_SIGNAL_MSI); CONST(c, KVM_CAP_IOEVENTFD_ANY_LENGTH);
  // mp states
  CONST(c, KVM_MP_STATE_RUNNABLE); CONST(c, KVM_MP_STATE_UNINITIALIZED);
  CONST(c, KVM_MP_STATE_INIT_RECEIVED); CONST(c, KVM_MP_STATE_HALTED);
  CONST(c, KVM_MP_STATE_SIPI_RECEIVED); CONST(c, KVM_MP_STATE_STOPPED);
  CONST(c, KVM_MP_STATE_CHECK_STOP); CONST(c, KVM_MP_STATE_OPERATING); CONST(c, KVM_MP_STATE_LOAD);
  // memory slot flags, eventfd flags
  CONST(c, KVM_MEM_LOG_DIRTY_PAGES); CONST(c, KVM_MEM_READONLY);
  CONST(c, KVM_IRQFD_FLAG_DEASSIGN); CONST(c, KVM_IRQFD_FLAG_RESAMPLE);
  c.Set("KVM_IOEVENTFD_FLAG_DATAMATCH", Napi::Number::New(env, KVM_IOEVENTFD_FLAG_DATAMATCH));
  c.Set("KVM_IOEVENTFD_FLAG_PIO", Napi::Number::New(env, KVM_IOEVENTFD_FLAG_PIO));
  c.Set("KVM_IOEVENTFD_FLAG_DEASSIGN", Napi::Number::New(env, KVM_IOEVENTFD_FLAG_DEASSIGN));
  CONST(c, KVM_PIT_SPEAKER_DUMMY);
  // TAP: the virtio-net header that IFF_VNET_HDR puts before every frame (lib/net/tap.ts)
  CONST(c, IFF_VNET_HDR);
  CONST(c, VIRTIO_NET_HDR_F_NEEDS_CSUM); CONST(c, VIRTIO_NET_HDR_GSO_NONE); CONST(c, VIRTIO_NET_HDR_GSO_TCPV4);
  CONST(c, VIRTIO_NET_HDR_GSO_ECN);
  // TUNSETOFFLOAD: what the host stack may hand us unfinished (checksums, TCPv4 super-frames)
  CONST(c, TUN_F_CSUM); CONST(c, TUN_F_TSO4);
  return c;
}

}  // namespace

void InitLayout(Napi::Env env, Napi::Object exports) {
  Napi::Object l = Napi::Object::New(env);
  l.Set("kvm_run", Run(env));
  l.Set("kvm_regs", Regs(env));
  l.Set("kvm_segment", Segment(env));
  l.Set("kvm_sregs", Sregs(env));
  l.Set("kvm_fpu", Fpu(env));
  l.Set("kvm_cpuid_entry2", CpuidEntry(env));
  l.Set("kvm_msrs", Msrs(env));
  l.Set("kvm_vcpu_events", Events(env));
  l.Set("kvm_stats", Stats(env));
  Napi::Object ring = Napi::Object::New(env);
  ring.Set("page_offset", Napi::Number::New(env, KVM_COALESCED_MMIO_PAGE_OFFSET * 4096));
  ring.Set("first", Napi::Number::New(env, offsetof(nkvm_coalesced_mmio_ring, first)));
  ring.Set("last", Napi::Number::New(env, offsetof(nkvm_coalesced_mmio_ring, last)));
  ring.Set("entries", Napi::Number::New(env, offsetof(nkvm_coalesced_mmio_ring, coalesced_mmio)));
  ring.Set("entry_size", Napi::Number::New(env, sizeof(kvm_coalesced_mmio)));
  ring.Set("entry_phys_addr", Napi::Number::New(env, offsetof(kvm_coalesced_mmio, phys_addr)));
  ring.Set("entry_len", Napi::Number::New(env, offsetof(kvm_coalesced_mmio, len)));
  ring.Set("entry_pio", Napi::Number::New(env, offsetof(kvm_coalesced_mmio, pio)));
  ring.Set("entry_data", Napi::Number::New(env, offsetof(kvm_coalesced_mmio, data)));
  ring.Set("max", Napi::Number::New(env, (4096 - sizeof(nkvm_coalesced_mmio_ring)) / sizeof(kvm_coalesced_mmio)));
  l.Set("kvm_coalesced_mmio_ring", ring);
  Napi::Object sizes = Napi::Object::New(env);
  sizes.Set("kvm_lapic_state", Napi::Number::New(env, sizeof(kvm_lapic_state)));
  sizes.Set("kvm_xcrs", Napi::Number::New(env, sizeof(kvm_xcrs)));
  l.Set("sizes", sizes);
  Napi::Object vnet = Napi::Object::New(env);
  SIZE(vnet, virtio_net_hdr);
  OFF(vnet, virtio_net_hdr, flags);
  OFF(vnet, virtio_net_hdr, gso_type);
  OFF(vnet, virtio_net_hdr, hdr_len);
  OFF(vnet, virtio_net_hdr, gso_size);
  OFF(vnet, virtio_net_hdr, csum_start);
  OFF(vnet, virtio_net_hdr, csum_offset);
  l.Set("virtio_net_hdr", vnet);
  exports.Set("layout", l);
  exports.Set("constants", Constants(env));
}

}  // namespace nkvm
