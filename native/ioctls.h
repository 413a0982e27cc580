// C-compatible versions of the uapi structs that end in a flexible array, and their ioctl
// numbers. In C++ the header's __DECLARE_FLEX_ARRAY wraps the array in a struct with an empty
// member, which g++ sizes as 1 byte: `entries` moves (kvm_cpuid2.entries at 12, not 8) and the
// size encoded in the ioctl number changes, so KVM rejects the call with EINVAL. These match
// what the kernel (C) sees.
#pragma once
#include <linux/kvm.h>

struct nkvm_cpuid2 {
  __u32 nent;
  __u32 padding;
  struct kvm_cpuid_entry2 entries[];
};

struct nkvm_msrs {
  __u32 nmsrs;
  __u32 pad;
  struct kvm_msr_entry entries[];
};

struct nkvm_msr_list {
  __u32 nmsrs;
  __u32 indices[];
};

struct nkvm_signal_mask {
  __u32 len;
  __u8 sigset[];
};

// kvm_coalesced_mmio_ring: the per-VM ring of writes KVM batched instead of exiting.
struct nkvm_coalesced_mmio_ring {
  __u32 first, last;
  struct kvm_coalesced_mmio coalesced_mmio[];
};

// The binary stats descriptor (KVM_GET_STATS_FD): the name follows the 16-byte header.
struct nkvm_stats_desc {
  __u32 flags;
  __s16 exponent;
  __u16 size;
  __u32 offset;
  __u32 bucket_size;
  char name[];
};

static_assert(sizeof(nkvm_stats_desc) == 16, "kvm_stats_desc header is 16 bytes in C");
static_assert(sizeof(nkvm_coalesced_mmio_ring) == 8, "kvm_coalesced_mmio_ring header is 8 bytes in C");
static_assert(sizeof(nkvm_cpuid2) == 8, "kvm_cpuid2 header is 8 bytes in C");
static_assert(sizeof(nkvm_msrs) == 8, "kvm_msrs header is 8 bytes in C");
static_assert(sizeof(nkvm_msr_list) == 4, "kvm_msr_list header is 4 bytes in C");
static_assert(sizeof(nkvm_signal_mask) == 4, "kvm_signal_mask header is 4 bytes in C");

#define NKVM_GET_SUPPORTED_CPUID _IOWR(KVMIO, 0x05, struct nkvm_cpuid2)
#define NKVM_GET_MSR_INDEX_LIST _IOWR(KVMIO, 0x02, struct nkvm_msr_list)
#define NKVM_GET_MSRS _IOWR(KVMIO, 0x88, struct nkvm_msrs)
#define NKVM_SET_MSRS _IOW(KVMIO, 0x89, struct nkvm_msrs)
#define NKVM_SET_CPUID2 _IOW(KVMIO, 0x90, struct nkvm_cpuid2)
#define NKVM_SET_SIGNAL_MASK _IOW(KVMIO, 0x8b, struct nkvm_signal_mask)
