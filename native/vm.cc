// VM-fd ioctls.
#include <fcntl.h>
#include <linux/kvm.h>

#include "common.h"

namespace nkvm {
namespace {

Napi::Value Done(const Napi::CallbackInfo& info, int r, const char* name) {
  if (r < 0) {
    ThrowErrno(info.Env(), errno, name);
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

// setUserMemoryRegion(vmfd, slot, flags, guestPhysAddr, size, arrayBuffer | null)
// A size of 0 deletes the slot (then the buffer may be null).
Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  kvm_userspace_memory_region r{};
  r.slot = info[1].As<Napi::Number>().Uint32Value();
  r.flags = info[2].As<Napi::Number>().Uint32Value();
  r.guest_phys_addr = U64Arg(info, 3);
  r.memory_size = U64Arg(info, 4);
  if (info[5].IsArrayBuffer()) {
    Napi::ArrayBuffer ab = info[5].As<Napi::ArrayBuffer>();
    if (ab.ByteLength() < r.memory_size) {
      ThrowArg(info.Env(), "memory region larger than its host buffer");
      return info.Env().Undefined();
    }
    r.userspace_addr = reinterpret_cast<uintptr_t>(ab.Data());
  }
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION");
}

Napi::Value CreateIrqchip(const Napi::CallbackInfo& info) {
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
}

Napi::Value CreatePit2(const Napi::CallbackInfo& info) {
  kvm_pit_config c{};
  c.flags = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_CREATE_PIT2, &c), "KVM_CREATE_PIT2");
}

// irqLine(vmfd, irq, level): KVM_IRQ_LINE (hot path for device interrupts).
Napi::Value IrqLine(const Napi::CallbackInfo& info) {
  kvm_irq_level l{};
  l.irq = info[1].As<Napi::Number>().Uint32Value();
  l.level = info[2].As<Napi::Number>().Uint32Value();
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_IRQ_LINE, &l), "KVM_IRQ_LINE");
}

Napi::Value SetTssAddr(const Napi::CallbackInfo& info) {
  unsigned long a = static_cast<unsigned long>(U64Arg(info, 1));
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_SET_TSS_ADDR, a), "KVM_SET_TSS_ADDR");
}

Napi::Value SetIdentityMapAddr(const Napi::CallbackInfo& info) {
  uint64_t a = U64Arg(info, 1);
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_SET_IDENTITY_MAP_ADDR, &a), "KVM_SET_IDENTITY_MAP_ADDR");
}

// ioeventfd(vmfd, addr, len, eventfd, datamatch: bigint, flags)
Napi::Value IoEventFd(const Napi::CallbackInfo& info) {
  kvm_ioeventfd e{};
  e.addr = U64Arg(info, 1);
  e.len = info[2].As<Napi::Number>().Uint32Value();
  e.fd = FdArg(info, 3);
  e.datamatch = U64Arg(info, 4);
  e.flags = info[5].As<Napi::Number>().Uint32Value();
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_IOEVENTFD, &e), "KVM_IOEVENTFD");
}

// irqfd(vmfd, eventfd, gsi, flags, resamplefd)
Napi::Value IrqFd(const Napi::CallbackInfo& info) {
  kvm_irqfd f{};
  f.fd = FdArg(info, 1);
  f.gsi = info[2].As<Napi::Number>().Uint32Value();
  f.flags = info[3].As<Napi::Number>().Uint32Value();
  f.resamplefd = info.Length() > 4 ? FdArg(info, 4) : 0;
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_IRQFD, &f), "KVM_IRQFD");
}

// signalMsi(vmfd, address: bigint, data, flags, devid): inject one MSI (KVM_SIGNAL_MSI).
// Returns the ioctl's result: >0 delivered, 0 blocked by the guest (e.g. masked in the LAPIC).
Napi::Value SignalMsi(const Napi::CallbackInfo& info) {
  kvm_msi m{};
  uint64_t a = U64Arg(info, 1);
  m.address_lo = static_cast<uint32_t>(a);
  m.address_hi = static_cast<uint32_t>(a >> 32);
  m.data = info[2].As<Napi::Number>().Uint32Value();
  m.flags = info.Length() > 3 ? info[3].As<Napi::Number>().Uint32Value() : 0;
  m.devid = info.Length() > 4 ? info[4].As<Napi::Number>().Uint32Value() : 0;
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_SIGNAL_MSI, &m), "KVM_SIGNAL_MSI");
}

// getDirtyLog(vmfd, slot, bitmap: Uint8Array) fills the caller's bitmap (one bit per page,
// sized by the caller to cover the slot, rounded up to 64 bits as the kernel writes longs).
Napi::Value GetDirtyLog(const Napi::CallbackInfo& info) {
  kvm_dirty_log d{};
  d.slot = info[1].As<Napi::Number>().Uint32Value();
  Napi::Uint8Array bm = info[2].As<Napi::Uint8Array>();
  d.dirty_bitmap = bm.Data();
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_GET_DIRTY_LOG, &d), "KVM_GET_DIRTY_LOG");
}

// getStatsFd(vm or vcpu fd) -> fd of the binary stats file (header, descriptors, data).
Napi::Value GetStatsFd(const Napi::CallbackInfo& info) {
  int fd = IoctlRetry(FdArg(info, 0), KVM_GET_STATS_FD, 0);
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Done(info, fd, "KVM_GET_STATS_FD");
}

// The zone of registerCoalescedMmio/unregisterCoalescedMmio(vmfd, addr, size, pio).
kvm_coalesced_mmio_zone ZoneArg(const Napi::CallbackInfo& info) {
  kvm_coalesced_mmio_zone z{};
  z.addr = U64Arg(info, 1);
  z.size = info[2].As<Napi::Number>().Uint32Value();
  z.pio = info[3].As<Napi::Number>().Uint32Value();
  return z;
}

// Guest writes to this zone are queued in the coalesced ring (read by the next exit's handler)
// instead of exiting each time.
Napi::Value RegisterCoalescedMmio(const Napi::CallbackInfo& info) {
  kvm_coalesced_mmio_zone z = ZoneArg(info);
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_REGISTER_COALESCED_MMIO, &z), "KVM_REGISTER_COALESCED_MMIO");
}

// The zone registered with exactly these values exits on every write again (a PCI BAR that
// moved or stopped decoding).
Napi::Value UnregisterCoalescedMmio(const Napi::CallbackInfo& info) {
  kvm_coalesced_mmio_zone z = ZoneArg(info);
  return Done(info, IoctlRetry(FdArg(info, 0), KVM_UNREGISTER_COALESCED_MMIO, &z), "KVM_UNREGISTER_COALESCED_MMIO");
}

Napi::Value CreateVcpu(const Napi::CallbackInfo& info) {
  int fd = IoctlRetry(FdArg(info, 0), KVM_CREATE_VCPU, static_cast<unsigned long>(info[1].As<Napi::Number>().Uint32Value()));
  if (fd >= 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Done(info, fd, "KVM_CREATE_VCPU");
}

}  // namespace

void InitVm(Napi::Env env, Napi::Object exports) {
  exports.Set("setUserMemoryRegion", Napi::Function::New(env, SetUserMemoryRegion));
  exports.Set("createIrqchip", Napi::Function::New(env, CreateIrqchip));
  exports.Set("createPit2", Napi::Function::New(env, CreatePit2));
  exports.Set("irqLine", Napi::Function::New(env, IrqLine));
  exports.Set("setTssAddr", Napi::Function::New(env, SetTssAddr));
  exports.Set("setIdentityMapAddr", Napi::Function::New(env, SetIdentityMapAddr));
  exports.Set("ioeventfd", Napi::Function::New(env, IoEventFd));
  exports.Set("irqfd", Napi::Function::New(env, IrqFd));
  exports.Set("signalMsi", Napi::Function::New(env, SignalMsi));
  exports.Set("getDirtyLog", Napi::Function::New(env, GetDirtyLog));
  exports.Set("getStatsFd", Napi::Function::New(env, GetStatsFd));
  exports.Set("createVcpu", Napi::Function::New(env, CreateVcpu));
  exports.Set("registerCoalescedMmio", Napi::Function::New(env, RegisterCoalescedMmio));
  exports.Set("unregisterCoalescedMmio", Napi::Function::New(env, UnregisterCoalescedMmio));
}

}  // namespace nkvm
