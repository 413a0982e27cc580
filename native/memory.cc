// Host mappings exposed to JS as external ArrayBuffers (zero copy): guest RAM
// (anonymous, shared so KVM and JS see the same pages) and each vCPU's kvm_run page.
//
// Release is explicit (munmap) and safe: the ArrayBuffer is detached first, so every JS view
// over it becomes zero-length instead of dangling. The GC finalizer is only a safety net.
#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <mutex>
#include <thread>
#include <unordered_map>

#include "common.h"
#include "memory.h"

namespace nkvm {
namespace {

struct Mapping {
  void* addr;
  size_t len;
  bool mapped;
  // Fresh guest RAM from mmapAnonymous (shared anonymous memory, i.e. shmem): a page it never
  // touched is a hole, not resident. False once remapFilePrivate put file pages behind it.
  bool anonShared;
};

std::mutex g_lock;
std::unordered_map<void*, Mapping*> g_mappings;

void Finalize(Napi::Env, void*, Mapping* m) {
  std::lock_guard<std::mutex> l(g_lock);
  if (m->mapped) munmap(m->addr, m->len);
  auto it = g_mappings.find(m->addr);
  if (it != g_mappings.end() && it->second == m) g_mappings.erase(it);
  delete m;
}

Napi::Value Wrap(Napi::Env env, void* addr, size_t len, bool anonShared = false) {
  auto* m = new Mapping{addr, len, true, anonShared};
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_mappings[addr] = m;
  }
  return Napi::ArrayBuffer::New(env, addr, len, Finalize, m);
}

// mmapAnonymous(size): guest RAM. MAP_NORESERVE: pages are only committed when touched.
Napi::Value MmapAnonymous(const Napi::CallbackInfo& info) {
  size_t len = static_cast<size_t>(U64Arg(info, 0));
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    ThrowErrno(info.Env(), errno, "mmap");
    return info.Env().Undefined();
  }
  return Wrap(info.Env(), p, len, true);
}

// mmapFd(fd, size): the vCPU's kvm_run area (KVM_GET_VCPU_MMAP_SIZE bytes at offset 0).
Napi::Value MmapFd(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  size_t len = static_cast<size_t>(U64Arg(info, 1));
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ThrowErrno(info.Env(), errno, "mmap");
    return info.Env().Undefined();
  }
  return Wrap(info.Env(), p, len);
}

// munmap(arrayBuffer): detach, then unmap. Idempotent.
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return info.Env().Undefined();
  void* addr = ab.Data();
  {
    std::lock_guard<std::mutex> l(g_lock);
    auto it = g_mappings.find(addr);
    if (it == g_mappings.end() || !it->second->mapped) return info.Env().Undefined();
    Mapping* m = it->second;
    m->mapped = false;
    munmap(m->addr, m->len);
  }
  ab.Detach();
  return info.Env().Undefined();
}

// remapFilePrivate(arrayBuffer, fd, offset): put a copy-on-write mapping of `fd` at `offset`
// (MAP_PRIVATE) in place of the pages behind a mapping made here, at the same address. MAP_FIXED
// swaps the two atomically, so the address stays valid for the KVM memory slot over it and for
// every JS view (no gap another thread's mmap could land in); KVM's MMU notifier drops its
// translations of the old pages. `offset` must be page-aligned.
Napi::Value RemapFilePrivate(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  int fd = FdArg(info, 1);
  off_t off = static_cast<off_t>(U64Arg(info, 2));
  if (ab.IsDetached()) {
    ThrowArg(info.Env(), "remapFilePrivate: the mapping was released");
    return info.Env().Undefined();
  }
  std::lock_guard<std::mutex> l(g_lock);
  auto it = g_mappings.find(ab.Data());
  if (it == g_mappings.end() || !it->second->mapped || it->second->len != ab.ByteLength()) {
    ThrowArg(info.Env(), "remapFilePrivate: not a mapping of the native shim");
    return info.Env().Undefined();
  }
  Mapping* m = it->second;
  // Freeing all of a booted guest's shared RAM is the slow part of the swap (shmem pages are
  // freed when the last mapping goes). A second mapping of the same pages (mremap with
  // old_size 0) keeps them alive through the swap, and a short-lived thread drops it after, so
  // the pages are freed while the restored guest already runs.
  void* keep = MAP_FAILED;
  if (m->anonShared) keep = mremap(m->addr, 0, m->len, MREMAP_MAYMOVE);
  void* p = mmap(m->addr, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE | MAP_FIXED, fd, off);
  int err = errno;
  if (keep != MAP_FAILED) {
    size_t len = m->len;
    std::thread([keep, len] { munmap(keep, len); }).detach();
  }
  if (p == MAP_FAILED) {
    ThrowErrno(info.Env(), err, "mmap");
    return info.Env().Undefined();
  }
  m->anonShared = false;
  return info.Env().Undefined();
}

// Address of an ArrayBuffer's memory, for KVM_SET_USER_MEMORY_REGION (as a BigInt).
Napi::Value Address(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ab.Data())));
}

}  // namespace

bool HolesAreNotResident(const void* addr, size_t len) {
  // With swap, a non-resident shmem page may be swapped out rather than a hole.
  struct sysinfo si;
  if (sysinfo(&si) != 0 || si.totalswap != 0) return false;
  const char* a = static_cast<const char*>(addr);
  std::lock_guard<std::mutex> l(g_lock);
  for (const auto& [start, m] : g_mappings) {
    const char* s = static_cast<const char*>(start);
    if (m->mapped && a >= s && a + len <= s + m->len) return m->anonShared;
  }
  return false;
}

Napi::Value WrapMapping(Napi::Env env, void* addr, size_t len) { return Wrap(env, addr, len); }

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mmapAnonymous", Napi::Function::New(env, MmapAnonymous));
  exports.Set("mmapFd", Napi::Function::New(env, MmapFd));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("remapFilePrivate", Napi::Function::New(env, RemapFilePrivate));
  exports.Set("address", Napi::Function::New(env, Address));
}

}  // namespace nkvm
