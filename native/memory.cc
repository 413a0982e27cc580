// Host mappings exposed to JS as external ArrayBuffers (zero copy): guest RAM (private
// anonymous memory, in 2 MiB transparent huge pages where the host allows) and each vCPU's
// kvm_run page.
//
// Release is explicit (munmap) and safe: the ArrayBuffer is detached first, so every JS view
// over it becomes zero-length instead of dangling. The GC finalizer is only a safety net.
#include <sys/mman.h>
#include <sys/sysinfo.h>

#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common.h"
#include "memory.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4  // linux/mman.h, Linux 5.7; older glibc headers lack it
#endif

namespace nkvm {
namespace {

struct Mapping {
  void* addr;
  size_t len;
  bool mapped;
  // Fresh guest RAM from mmapAnonymous (private anonymous memory): a page it never touched is a
  // hole, not resident. False once remapFilePrivate put file pages behind it.
  bool anonFresh;
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

Napi::Value Wrap(Napi::Env env, void* addr, size_t len, bool anonFresh = false) {
  auto* m = new Mapping{addr, len, true, anonFresh};
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_mappings[addr] = m;
  }
  return Napi::ArrayBuffer::New(env, addr, len, Finalize, m);
}

constexpr size_t kHugePage = size_t{2} << 20;

// mmapAnonymous(size): guest RAM. MAP_NORESERVE: pages are only committed when touched.
// Private anonymous memory, 2 MiB-aligned and marked MADV_HUGEPAGE, so that the host backs it
// with transparent huge pages and KVM maps the guest in 2 MiB steps: a Linux guest's boot then
// takes one nested page fault per 2 MiB it touches, not one per 4 KiB (in the nested lab, 5.5k
// VM exits per boot instead of 33k). Shared anonymous memory (shmem) gets no huge pages unless
// the host's shmem_enabled allows them, which by default it does not.
// MADV_DONTFORK: a child process the host forks (child_process.spawn) must not share these
// pages copy-on-write; otherwise every guest write until the child's exec would copy a page.
Napi::Value MmapAnonymous(const Napi::CallbackInfo& info) {
  size_t len = static_cast<size_t>(U64Arg(info, 0));
  // Over-allocate by one huge page and trim, for an aligned start.
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    ThrowErrno(info.Env(), errno, "mmap");
    return info.Env().Undefined();
  }
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + len + kHugePage;
  if (end > aligned + len) munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
  void* p = reinterpret_cast<void*>(aligned);
  // Advice only: without THP (or on an old kernel) the memory still works, in 4 KiB pages.
  (void)madvise(p, len, MADV_HUGEPAGE);
  (void)madvise(p, len, MADV_DONTFORK);
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
  // Freeing all of a booted guest's RAM is the slow part of the swap. MREMAP_DONTUNMAP moves
  // the pages to another address and leaves this range mapped and empty, so the swap below
  // frees nothing and a short-lived thread unmaps the old pages while the restored guest
  // already runs. Where the kernel lacks it (before 5.7), the swap frees them itself.
  void* keep = MAP_FAILED;
  if (m->anonFresh) keep = mremap(m->addr, m->len, m->len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
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
  m->anonFresh = false;
  return info.Env().Undefined();
}

// Address of an ArrayBuffer's memory, for KVM_SET_USER_MEMORY_REGION (as a BigInt).
Napi::Value Address(const Napi::CallbackInfo& info) {
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ab.Data())));
}

}  // namespace

bool HolesAreNotResident(const void* addr, size_t len) {
  // With swap, a non-resident anonymous page may be swapped out rather than a hole.
  struct sysinfo si;
  if (sysinfo(&si) != 0 || si.totalswap != 0) return false;
  const char* a = static_cast<const char*>(addr);
  std::lock_guard<std::mutex> l(g_lock);
  for (const auto& [start, m] : g_mappings) {
    const char* s = static_cast<const char*>(start);
    if (m->mapped && a >= s && a + len <= s + m->len) return m->anonFresh;
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
