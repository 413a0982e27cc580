// Snapshot ioctls: the in-kernel irqchip (PIC ×2, IOAPIC), PIT, kvmclock, XSAVE and the TSC
// rate, plus a copy-on-write mapping of a snapshot file for restoring guest RAM.
#include <linux/kvm.h>
#include <sys/mman.h>

#include <vector>

#include "common.h"
#include "memory.h"

namespace nkvm {
namespace {

// struct kvm_xsave ends in __DECLARE_FLEX_ARRAY(extra), which g++ mis-sizes (see ioctls.h):
// this is the 4 KiB legacy area as C sees it, for KVM_GET_XSAVE / KVM_SET_XSAVE.
struct nkvm_xsave {
  __u32 region[1024];
};
static_assert(sizeof(nkvm_xsave) == 4096, "kvm_xsave is 4096 bytes in C");

#define NKVM_GET_XSAVE _IOR(KVMIO, 0xa4, struct nkvm_xsave)
#define NKVM_SET_XSAVE _IOW(KVMIO, 0xa5, struct nkvm_xsave)
#define NKVM_GET_XSAVE2 _IOR(KVMIO, 0xcf, struct nkvm_xsave)

// getIrqchip(vmfd, chipId): struct kvm_irqchip (0 PIC master, 1 PIC slave, 2 IOAPIC).
Napi::Value GetIrqchip(const Napi::CallbackInfo& info) {
  kvm_irqchip c;
  memset(&c, 0, sizeof c);
  c.chip_id = info[1].As<Napi::Number>().Uint32Value();
  if (IoctlRetry(FdArg(info, 0), KVM_GET_IRQCHIP, &c) < 0) {
    ThrowErrno(info.Env(), errno, "KVM_GET_IRQCHIP");
    return info.Env().Undefined();
  }
  return StructOut(info.Env(), c);
}

// setIrqchip(vmfd, bytes): the chip is named by chip_id inside the struct.
Napi::Value SetIrqchip(const Napi::CallbackInfo& info) {
  SetStruct<kvm_irqchip>(info, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP");
  return info.Env().Undefined();
}

Napi::Value GetPit2(const Napi::CallbackInfo& info) { return GetStruct<kvm_pit_state2>(info, KVM_GET_PIT2, "KVM_GET_PIT2"); }
Napi::Value SetPit2(const Napi::CallbackInfo& info) {
  SetStruct<kvm_pit_state2>(info, KVM_SET_PIT2, "KVM_SET_PIT2");
  return info.Env().Undefined();
}

Napi::Value GetClock(const Napi::CallbackInfo& info) { return GetStruct<kvm_clock_data>(info, KVM_GET_CLOCK, "KVM_GET_CLOCK"); }
Napi::Value SetClock(const Napi::CallbackInfo& info) {
  SetStruct<kvm_clock_data>(info, KVM_SET_CLOCK, "KVM_SET_CLOCK");
  return info.Env().Undefined();
}

// getXsave(vcpufd, size?): KVM_GET_XSAVE (4096 bytes), or KVM_GET_XSAVE2 when `size` (the VM's
// KVM_CAP_XSAVE2 answer) is larger.
Napi::Value GetXsave(const Napi::CallbackInfo& info) {
  size_t size = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 4096;
  if (size < 4096) size = 4096;
  std::vector<uint8_t> buf(size, 0);
  unsigned long req = size > 4096 ? NKVM_GET_XSAVE2 : NKVM_GET_XSAVE;
  if (IoctlRetry(FdArg(info, 0), req, buf.data()) < 0) {
    ThrowErrno(info.Env(), errno, size > 4096 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
    return info.Env().Undefined();
  }
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), size);
  memcpy(out.Data(), buf.data(), size);
  return out;
}

// setXsave(vcpufd, bytes): at least 4096 bytes (KVM reads the XSAVE2 size when it is larger).
Napi::Value SetXsave(const Napi::CallbackInfo& info) {
  Napi::Uint8Array in = info[1].As<Napi::Uint8Array>();
  if (in.ByteLength() < sizeof(nkvm_xsave)) {
    ThrowArg(info.Env(), "xsave area shorter than 4096 bytes");
    return info.Env().Undefined();
  }
  std::vector<uint8_t> buf(in.Data(), in.Data() + in.ByteLength());
  if (IoctlRetry(FdArg(info, 0), NKVM_SET_XSAVE, buf.data()) < 0) ThrowErrno(info.Env(), errno, "KVM_SET_XSAVE");
  return info.Env().Undefined();
}

// getTscKhz(vcpufd): the guest TSC frequency in kHz.
Napi::Value GetTscKhz(const Napi::CallbackInfo& info) {
  int r = IoctlRetry(FdArg(info, 0), KVM_GET_TSC_KHZ, 0);
  if (r < 0) {
    ThrowErrno(info.Env(), errno, "KVM_GET_TSC_KHZ");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

// mmapFilePrivate(fd, size, offset = 0): a copy-on-write view of a file (MAP_PRIVATE): reads
// come from the page cache, writes go to private pages and never reach the file. `offset` must
// be page-aligned. Released by munmap() like every other mapping.
Napi::Value MmapFilePrivate(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  size_t len = static_cast<size_t>(U64Arg(info, 1));
  off_t off = info.Length() > 2 ? static_cast<off_t>(U64Arg(info, 2)) : 0;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, off);
  if (p == MAP_FAILED) {
    ThrowErrno(info.Env(), errno, "mmap");
    return info.Env().Undefined();
  }
  return WrapMapping(info.Env(), p, len);
}

}  // namespace

void InitSnapshot(Napi::Env env, Napi::Object exports) {
  exports.Set("getIrqchip", Napi::Function::New(env, GetIrqchip));
  exports.Set("setIrqchip", Napi::Function::New(env, SetIrqchip));
  exports.Set("getPit2", Napi::Function::New(env, GetPit2));
  exports.Set("setPit2", Napi::Function::New(env, SetPit2));
  exports.Set("getClock", Napi::Function::New(env, GetClock));
  exports.Set("setClock", Napi::Function::New(env, SetClock));
  exports.Set("getXsave", Napi::Function::New(env, GetXsave));
  exports.Set("setXsave", Napi::Function::New(env, SetXsave));
  exports.Set("getTscKhz", Napi::Function::New(env, GetTscKhz));
  exports.Set("mmapFilePrivate", Napi::Function::New(env, MmapFilePrivate));
}

}  // namespace nkvm
