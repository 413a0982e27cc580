// Small argument helpers shared by the shim's files. The TS layer validates user input first;
// these checks only keep a wrong call from reaching the kernel with garbage.
#pragma once
#include <napi.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "errors.h"

namespace nkvm {

// Retry an ioctl interrupted by a signal (every ioctl but KVM_RUN, which has its own rules).
template <typename... A>
inline int IoctlRetry(int fd, unsigned long req, A... args) {
  int r;
  do {
    r = ioctl(fd, req, args...);
  } while (r < 0 && errno == EINTR);
  return r;
}

inline int FdArg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Int32Value();
}

inline uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue());
}

// Copy a kernel struct out as a fresh Uint8Array.
template <typename T>
inline Napi::Value StructOut(Napi::Env env, const T& s) {
  Napi::Uint8Array out = Napi::Uint8Array::New(env, sizeof(T));
  memcpy(out.Data(), &s, sizeof(T));
  return out;
}

// Read a kernel struct from a Uint8Array argument; throws on a size mismatch.
template <typename T>
inline bool StructIn(const Napi::CallbackInfo& info, size_t i, T* s) {
  Napi::Uint8Array in = info[i].As<Napi::Uint8Array>();
  if (in.ByteLength() != sizeof(T)) {
    ThrowArg(info.Env(), "struct size mismatch");
    return false;
  }
  memcpy(s, in.Data(), sizeof(T));
  return true;
}

// GET ioctl on fd into T, returned as bytes.
template <typename T>
inline Napi::Value GetStruct(const Napi::CallbackInfo& info, unsigned long req, const char* name) {
  T s;
  memset(&s, 0, sizeof s);
  if (IoctlRetry(FdArg(info, 0), req, &s) < 0) {
    ThrowErrno(info.Env(), errno, name);
    return info.Env().Undefined();
  }
  return StructOut(info.Env(), s);
}

// SET ioctl on fd from bytes.
template <typename T>
inline void SetStruct(const Napi::CallbackInfo& info, unsigned long req, const char* name) {
  T s;
  if (!StructIn(info, 1, &s)) return;
  if (IoctlRetry(FdArg(info, 0), req, &s) < 0) ThrowErrno(info.Env(), errno, name);
}

// Module initialisers, one per file.
void InitSystem(Napi::Env env, Napi::Object exports);
void InitVm(Napi::Env env, Napi::Object exports);
void InitVcpu(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitKick(Napi::Env env, Napi::Object exports);
void InitVcpuThread(Napi::Env env, Napi::Object exports);
void InitLayout(Napi::Env env, Napi::Object exports);
void InitTap(Napi::Env env, Napi::Object exports);
void InitSnapshot(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitFs(Napi::Env env, Napi::Object exports);
void InitEventfdWatch(Napi::Env env, Napi::Object exports);

}  // namespace nkvm
