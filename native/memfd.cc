// Anonymous memory files (memfd) for in-memory snapshots: guest RAM is written into one at
// capture, and a restore maps it MAP_PRIVATE over the RAM slot (mmapFilePrivate), so the restore
// costs page faults for the pages the guest touches instead of a copy of all of RAM, and the
// guest's writes never reach the snapshot.
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common.h"
#include "memory.h"

namespace nkvm {
namespace {

constexpr size_t kPage = 4096;

// memfdCreate(name, size): a close-on-exec memfd of `size` bytes. ftruncate leaves it one hole:
// it reads back as zeros and holds no memory until written.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  off_t len = static_cast<off_t>(U64Arg(info, 1));
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) {
    ThrowErrno(info.Env(), errno, "memfd_create");
    return info.Env().Undefined();
  }
  if (ftruncate(fd, len) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), err, "ftruncate");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), fd);
}

bool PageIsZero(const uint8_t* p) {
  // Word-wise OR, 512 bytes at a time so a non-zero page (the common case) stops early.
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  for (size_t chunk = 0; chunk < kPage / 8; chunk += 64) {
    uint64_t acc = 0;
    for (size_t i = 0; i < 64; i++) acc |= w[chunk + i];
    if (acc != 0) return false;
  }
  return true;
}

bool WriteAll(int fd, const uint8_t* p, size_t len, off_t off) {
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
    off += n;
  }
  return true;
}

// memfdWriteSparse(fd, bytes, offset): write `bytes` (a Uint8Array, e.g. over guest RAM) at
// `offset` of a fresh memfd, leaving out every all-zero page: those stay holes, which read back
// as zeros, so RAM the guest never used costs the snapshot neither memory nor copy time.
// In fresh guest RAM on a swapless host, pages never touched are skipped without reading them
// (mincore), which would allocate them. `offset` and the length must be page multiples.
// Returns the bytes written.
Napi::Value MemfdWriteSparse(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  off_t base = static_cast<off_t>(U64Arg(info, 2));
  const uint8_t* data = bytes.Data();
  size_t len = bytes.ByteLength();
  if (len % kPage != 0 || base % static_cast<off_t>(kPage) != 0) {
    ThrowArg(info.Env(), "memfdWriteSparse: offset and length must be multiples of 4096");
    return info.Env().Undefined();
  }
  std::vector<unsigned char> resident;
  if (reinterpret_cast<uintptr_t>(data) % kPage == 0 && HolesAreNotResident(data, len)) {
    resident.resize(len / kPage);
    if (mincore(const_cast<uint8_t*>(data), len, resident.data()) != 0) resident.clear();
  }
  size_t written = 0;
  size_t run = 0;  // start of the current run of non-zero pages
  for (size_t at = 0; at <= len; at += kPage) {
    bool zero = at == len || (!resident.empty() && (resident[at / kPage] & 1) == 0) || PageIsZero(data + at);
    if (!zero) continue;
    if (at > run) {
      if (!WriteAll(fd, data + run, at - run, base + static_cast<off_t>(run))) {
        ThrowErrno(info.Env(), errno, "pwrite");
        return info.Env().Undefined();
      }
      written += at - run;
    }
    run = at + kPage;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(written));
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate));
  exports.Set("memfdWriteSparse", Napi::Function::New(env, MemfdWriteSparse));
}

}  // namespace nkvm
