// vCPU-fd ioctls: KVM_RUN (through the kicker) and the state get/set pairs. State structs
// cross as raw bytes; lib/kvm decodes them with the offsets native/layout.cc exports.
#include <linux/kvm.h>
#include <signal.h>

#include <vector>

#include "common.h"
#include "ioctls.h"
#include "kick.h"

namespace nkvm {
namespace {

// registerRun(vcpufd, kvmRunArrayBuffer): remember where this vCPU's kvm_run lives.
Napi::Value RegisterRunFn(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
  RegisterRun(FdArg(info, 0), static_cast<kvm_run*>(ab.Data()));
  return info.Env().Undefined();
}

Napi::Value UnregisterRunFn(const Napi::CallbackInfo& info) {
  UnregisterRun(FdArg(info, 0));
  return info.Env().Undefined();
}

// run(vcpufd) -> exit reason (KVM_EXIT_*), or -1 when kicked ('interrupted').
Napi::Value Run(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  kvm_run* run = RunFor(fd);
  if (run == nullptr) {
    ThrowErrno(info.Env(), EBADF, "KVM_RUN");
    return info.Env().Undefined();
  }
  uv_loop_t* loop;
  napi_get_uv_event_loop(info.Env(), &loop);
  int r = RunOnMainThread(fd, run, loop);
  if (r == -2) {
    ThrowErrno(info.Env(), errno, "KVM_RUN");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

// kick(vcpufd): the next (or current, for a native-thread vCPU) KVM_RUN returns at once.
Napi::Value Kick(const Napi::CallbackInfo& info) {
  kvm_run* run = RunFor(FdArg(info, 0));
  if (run != nullptr) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  return info.Env().Undefined();
}

Napi::Value GetRegs(const Napi::CallbackInfo& info) { return GetStruct<kvm_regs>(info, KVM_GET_REGS, "KVM_GET_REGS"); }
Napi::Value SetRegs(const Napi::CallbackInfo& info) { SetStruct<kvm_regs>(info, KVM_SET_REGS, "KVM_SET_REGS"); return info.Env().Undefined(); }
Napi::Value GetSregs(const Napi::CallbackInfo& info) { return GetStruct<kvm_sregs>(info, KVM_GET_SREGS, "KVM_GET_SREGS"); }
Napi::Value SetSregs(const Napi::CallbackInfo& info) { SetStruct<kvm_sregs>(info, KVM_SET_SREGS, "KVM_SET_SREGS"); return info.Env().Undefined(); }
Napi::Value GetFpu(const Napi::CallbackInfo& info) { return GetStruct<kvm_fpu>(info, KVM_GET_FPU, "KVM_GET_FPU"); }
Napi::Value SetFpu(const Napi::CallbackInfo& info) { SetStruct<kvm_fpu>(info, KVM_SET_FPU, "KVM_SET_FPU"); return info.Env().Undefined(); }
Napi::Value GetLapic(const Napi::CallbackInfo& info) { return GetStruct<kvm_lapic_state>(info, KVM_GET_LAPIC, "KVM_GET_LAPIC"); }
Napi::Value SetLapic(const Napi::CallbackInfo& info) { SetStruct<kvm_lapic_state>(info, KVM_SET_LAPIC, "KVM_SET_LAPIC"); return info.Env().Undefined(); }
Napi::Value GetVcpuEvents(const Napi::CallbackInfo& info) { return GetStruct<kvm_vcpu_events>(info, KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"); }
Napi::Value SetVcpuEvents(const Napi::CallbackInfo& info) { SetStruct<kvm_vcpu_events>(info, KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS"); return info.Env().Undefined(); }
Napi::Value GetXcrs(const Napi::CallbackInfo& info) { return GetStruct<kvm_xcrs>(info, KVM_GET_XCRS, "KVM_GET_XCRS"); }
Napi::Value SetXcrs(const Napi::CallbackInfo& info) { SetStruct<kvm_xcrs>(info, KVM_SET_XCRS, "KVM_SET_XCRS"); return info.Env().Undefined(); }

Napi::Value GetMpState(const Napi::CallbackInfo& info) {
  kvm_mp_state s{};
  if (IoctlRetry(FdArg(info, 0), KVM_GET_MP_STATE, &s) < 0) {
    ThrowErrno(info.Env(), errno, "KVM_GET_MP_STATE");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), s.mp_state);
}

Napi::Value SetMpState(const Napi::CallbackInfo& info) {
  kvm_mp_state s{};
  s.mp_state = info[1].As<Napi::Number>().Uint32Value();
  if (IoctlRetry(FdArg(info, 0), KVM_SET_MP_STATE, &s) < 0) ThrowErrno(info.Env(), errno, "KVM_SET_MP_STATE");
  return info.Env().Undefined();
}

// Variable-length structs: the caller passes the whole struct (header + entries) as bytes.
// getMsrs(fd, bytes) fills the data fields in place and returns how many were read.
Napi::Value GetMsrs(const Napi::CallbackInfo& info) {
  Napi::Uint8Array b = info[1].As<Napi::Uint8Array>();
  if (b.ByteLength() < sizeof(nkvm_msrs)) {
    ThrowArg(info.Env(), "kvm_msrs buffer too small");
    return info.Env().Undefined();
  }
  int r = IoctlRetry(FdArg(info, 0), NKVM_GET_MSRS, b.Data());
  if (r < 0) {
    ThrowErrno(info.Env(), errno, "KVM_GET_MSRS");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

Napi::Value SetMsrs(const Napi::CallbackInfo& info) {
  Napi::Uint8Array b = info[1].As<Napi::Uint8Array>();
  if (b.ByteLength() < sizeof(nkvm_msrs)) {
    ThrowArg(info.Env(), "kvm_msrs buffer too small");
    return info.Env().Undefined();
  }
  int r = IoctlRetry(FdArg(info, 0), NKVM_SET_MSRS, b.Data());
  if (r < 0) {
    ThrowErrno(info.Env(), errno, "KVM_SET_MSRS");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

// setCpuid2(fd, entriesBytes): entries are kvm_cpuid_entry2[] back to back.
Napi::Value SetCpuid2(const Napi::CallbackInfo& info) {
  Napi::Uint8Array e = info[1].As<Napi::Uint8Array>();
  if (e.ByteLength() % sizeof(kvm_cpuid_entry2) != 0) {
    ThrowArg(info.Env(), "cpuid entries size mismatch");
    return info.Env().Undefined();
  }
  std::vector<uint8_t> buf(sizeof(nkvm_cpuid2) + e.ByteLength(), 0);
  auto* c = reinterpret_cast<nkvm_cpuid2*>(buf.data());
  c->nent = e.ByteLength() / sizeof(kvm_cpuid_entry2);
  memcpy(c->entries, e.Data(), e.ByteLength());
  if (IoctlRetry(FdArg(info, 0), NKVM_SET_CPUID2, c) < 0) ThrowErrno(info.Env(), errno, "KVM_SET_CPUID2");
  return info.Env().Undefined();
}

// setSignalMask(fd, signals: number[] | null): the mask applied only while in KVM_RUN.
Napi::Value SetSignalMask(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  if (!info[1].IsArray()) {
    if (IoctlRetry(fd, NKVM_SET_SIGNAL_MASK, nullptr) < 0) ThrowErrno(info.Env(), errno, "KVM_SET_SIGNAL_MASK");
    return info.Env().Undefined();
  }
  sigset_t set;
  sigemptyset(&set);
  Napi::Array a = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) sigaddset(&set, a.Get(i).As<Napi::Number>().Int32Value());
  // The kernel wants its own sigset size (8 bytes), not glibc's 128-byte sigset_t.
  std::vector<uint8_t> buf(sizeof(nkvm_signal_mask) + 8, 0);
  auto* m = reinterpret_cast<nkvm_signal_mask*>(buf.data());
  m->len = 8;
  memcpy(m->sigset, &set, 8);
  if (IoctlRetry(fd, NKVM_SET_SIGNAL_MASK, m) < 0) ThrowErrno(info.Env(), errno, "KVM_SET_SIGNAL_MASK");
  return info.Env().Undefined();
}

}  // namespace

void InitVcpu(Napi::Env env, Napi::Object exports) {
  exports.Set("registerRun", Napi::Function::New(env, RegisterRunFn));
  exports.Set("unregisterRun", Napi::Function::New(env, UnregisterRunFn));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("kick", Napi::Function::New(env, Kick));
  exports.Set("getRegs", Napi::Function::New(env, GetRegs));
  exports.Set("setRegs", Napi::Function::New(env, SetRegs));
  exports.Set("getSregs", Napi::Function::New(env, GetSregs));
  exports.Set("setSregs", Napi::Function::New(env, SetSregs));
  exports.Set("getFpu", Napi::Function::New(env, GetFpu));
  exports.Set("setFpu", Napi::Function::New(env, SetFpu));
  exports.Set("getLapic", Napi::Function::New(env, GetLapic));
  exports.Set("setLapic", Napi::Function::New(env, SetLapic));
  exports.Set("getVcpuEvents", Napi::Function::New(env, GetVcpuEvents));
  exports.Set("setVcpuEvents", Napi::Function::New(env, SetVcpuEvents));
  exports.Set("getXcrs", Napi::Function::New(env, GetXcrs));
  exports.Set("setXcrs", Napi::Function::New(env, SetXcrs));
  exports.Set("getMpState", Napi::Function::New(env, GetMpState));
  exports.Set("setMpState", Napi::Function::New(env, SetMpState));
  exports.Set("getMsrs", Napi::Function::New(env, GetMsrs));
  exports.Set("setMsrs", Napi::Function::New(env, SetMsrs));
  exports.Set("setCpuid2", Napi::Function::New(env, SetCpuid2));
  exports.Set("setSignalMask", Napi::Function::New(env, SetSignalMask));
}

}  // namespace nkvm
