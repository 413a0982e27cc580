// /dev/kvm itself: open, system ioctls, close.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vector>

#include "common.h"
#include "ioctls.h"

namespace nkvm {
namespace {

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd;
  do {
    fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "open");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  // close() is not retried on EINTR: on Linux the fd is gone either way.
  if (close(FdArg(info, 0)) < 0 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

Napi::Value SimpleIoctl(const Napi::CallbackInfo& info, unsigned long req, unsigned long arg, const char* name) {
  int r = IoctlRetry(FdArg(info, 0), req, arg);
  if (r < 0) {
    ThrowErrno(info.Env(), errno, name);
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

Napi::Value GetApiVersion(const Napi::CallbackInfo& info) {
  return SimpleIoctl(info, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
}

Napi::Value CheckExtension(const Napi::CallbackInfo& info) {
  return SimpleIoctl(info, KVM_CHECK_EXTENSION, info[1].As<Napi::Number>().Uint32Value(), "KVM_CHECK_EXTENSION");
}

Napi::Value GetVcpuMmapSize(const Napi::CallbackInfo& info) {
  return SimpleIoctl(info, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
}

Napi::Value CreateVm(const Napi::CallbackInfo& info) {
  unsigned long type = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 0;
  int fd = IoctlRetry(FdArg(info, 0), KVM_CREATE_VM, type);
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "KVM_CREATE_VM");
    return info.Env().Undefined();
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Napi::Number::New(info.Env(), fd);
}

// KVM_GET_SUPPORTED_CPUID: grow the buffer until the kernel stops saying E2BIG. Returns the
// raw kvm_cpuid_entry2 array (lib/kvm decodes it with the exported layout).
Napi::Value GetSupportedCpuid(const Napi::CallbackInfo& info) {
  for (uint32_t nent = 64; nent <= 4096; nent *= 2) {
    size_t bytes = sizeof(nkvm_cpuid2) + nent * sizeof(kvm_cpuid_entry2);
    std::vector<uint8_t> buf(bytes, 0);
    auto* c = reinterpret_cast<nkvm_cpuid2*>(buf.data());
    c->nent = nent;
    if (IoctlRetry(FdArg(info, 0), NKVM_GET_SUPPORTED_CPUID, c) == 0) {
      Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), c->nent * sizeof(kvm_cpuid_entry2));
      memcpy(out.Data(), c->entries, out.ByteLength());
      return out;
    }
    if (errno != E2BIG) {
      ThrowErrno(info.Env(), errno, "KVM_GET_SUPPORTED_CPUID");
      return info.Env().Undefined();
    }
  }
  ThrowErrno(info.Env(), E2BIG, "KVM_GET_SUPPORTED_CPUID");
  return info.Env().Undefined();
}

Napi::Value GetMsrIndexList(const Napi::CallbackInfo& info) {
  for (uint32_t n = 64; n <= 65536; n *= 2) {
    std::vector<uint8_t> buf(sizeof(nkvm_msr_list) + n * sizeof(uint32_t), 0);
    auto* l = reinterpret_cast<nkvm_msr_list*>(buf.data());
    l->nmsrs = n;
    if (IoctlRetry(FdArg(info, 0), NKVM_GET_MSR_INDEX_LIST, l) == 0) {
      Napi::Array out = Napi::Array::New(info.Env(), l->nmsrs);
      for (uint32_t i = 0; i < l->nmsrs; i++) out.Set(i, Napi::Number::New(info.Env(), l->indices[i]));
      return out;
    }
    if (errno != E2BIG) {
      ThrowErrno(info.Env(), errno, "KVM_GET_MSR_INDEX_LIST");
      return info.Env().Undefined();
    }
  }
  ThrowErrno(info.Env(), E2BIG, "KVM_GET_MSR_INDEX_LIST");
  return info.Env().Undefined();
}

// eventfd(2), for KVM_IOEVENTFD / KVM_IRQFD users.
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  int fd = eventfd(info.Length() > 0 ? info[0].As<Napi::Number>().Uint32Value() : 0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "eventfd");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitSystem(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("getApiVersion", Napi::Function::New(env, GetApiVersion));
  exports.Set("checkExtension", Napi::Function::New(env, CheckExtension));
  exports.Set("getVcpuMmapSize", Napi::Function::New(env, GetVcpuMmapSize));
  exports.Set("createVm", Napi::Function::New(env, CreateVm));
  exports.Set("getSupportedCpuid", Napi::Function::New(env, GetSupportedCpuid));
  exports.Set("getMsrIndexList", Napi::Function::New(env, GetMsrIndexList));
  exports.Set("eventfd", Napi::Function::New(env, EventFd));
}

}  // namespace nkvm
