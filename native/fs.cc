// Thin wrappers over the *at() family of file syscalls that Node's fs lacks (openat2 with
// RESOLVE_* flags, operations relative to a directory fd, getdents64 at an offset). The 9P
// server (lib/devices/virtio/9p/) builds its jail from them; the policy (which flags, which
// fd) is all in TypeScript. Each call runs on the libuv threadpool (a file syscall can block
// on disk or a network filesystem) and returns a Promise: the result, or a rejection with
// KvmError (code = errno name, syscall = the syscall's name).
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "common.h"

namespace nkvm {
namespace {

// A path argument: a string (UTF-8) or bytes (guest names need not be UTF-8). Bytes with a NUL
// are refused by the caller (TS); here a NUL simply ends the C string.
std::string PathArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsTypedArray()) {
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    return std::string(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
  }
  return v.As<Napi::String>().Utf8Value();
}

int IntArg(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }
int64_t I64Arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  return static_cast<int64_t>(v.As<Napi::Number>().DoubleValue());
}

// One syscall on the threadpool. `work` returns >= 0 on success, or -1 with errno set; `done`
// (main thread) turns a success into the resolved value (default: the number).
class FsWork : public Napi::AsyncWorker {
 public:
  FsWork(Napi::Env env, const char* syscall, std::function<long()> work,
         std::function<Napi::Value(Napi::Env, long)> done = nullptr)
      : Napi::AsyncWorker(env, "node-kvm:fs"),
        deferred_(Napi::Promise::Deferred::New(env)),
        syscall_(syscall),
        work_(std::move(work)),
        done_(std::move(done)) {}

  // Keeps a JS buffer alive while the syscall may touch its memory.
  void Hold(Napi::Value v) { held_.push_back(Napi::Persistent(v.As<Napi::Object>())); }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    do {
      result_ = work_();
    } while (result_ < 0 && errno == EINTR);
    err_ = result_ < 0 ? errno : 0;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(ErrnoError(env, err_, syscall_));
    } else {
      deferred_.Resolve(done_ ? done_(env, result_) : Napi::Number::New(env, static_cast<double>(result_)));
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  const char* syscall_;
  std::function<long()> work_;
  std::function<Napi::Value(Napi::Env, long)> done_;
  std::vector<Napi::ObjectReference> held_;
  long result_ = 0;
  int err_ = 0;
};

Napi::Value Queue(FsWork* w) {
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// openat2(dirfd, path, flags, mode, resolve) -> fd
Napi::Value Openat2(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  struct open_how how = {};
  how.flags = U32Arg(info, 2);
  how.mode = U32Arg(info, 3);
  how.resolve = U32Arg(info, 4);
  return Queue(new FsWork(info.Env(), "openat2", [=]() {
    return static_cast<long>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
  }));
}

// statx(dirfd, path, flags, mask) -> BigInt64Array [mask, mode, nlink, uid, gid, rdevMajor,
// rdevMinor, ino, size, blocks, blksize, atimeSec, atimeNsec, mtimeSec, mtimeNsec, ctimeSec,
// ctimeNsec, btimeSec, btimeNsec, devMajor, devMinor]
constexpr size_t kStatxFields = 21;
void StatxFields(const struct statx& s, int64_t* out) {
  int64_t v[kStatxFields] = {s.stx_mask, s.stx_mode, s.stx_nlink, s.stx_uid, s.stx_gid,
                             s.stx_rdev_major, s.stx_rdev_minor, static_cast<int64_t>(s.stx_ino),
                             static_cast<int64_t>(s.stx_size), static_cast<int64_t>(s.stx_blocks),
                             s.stx_blksize, s.stx_atime.tv_sec, s.stx_atime.tv_nsec, s.stx_mtime.tv_sec,
                             s.stx_mtime.tv_nsec, s.stx_ctime.tv_sec, s.stx_ctime.tv_nsec,
                             s.stx_btime.tv_sec, s.stx_btime.tv_nsec, s.stx_dev_major, s.stx_dev_minor};
  memcpy(out, v, sizeof v);
}
Napi::Value Statx(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  int flags = IntArg(info, 2);
  unsigned mask = U32Arg(info, 3);
  auto st = std::make_shared<struct statx>();
  return Queue(new FsWork(
      info.Env(), "statx",
      [=]() { return static_cast<long>(statx(dirfd, path.c_str(), flags, mask, st.get())); },
      [st](Napi::Env env, long) -> Napi::Value {
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, kStatxFields * 8);
        StatxFields(*st, static_cast<int64_t*>(ab.Data()));
        return Napi::BigInt64Array::New(env, kStatxFields, ab, 0);
      }));
}

// --- Synchronous variants, for calls the kernel promises not to block (the caller passes
// RESOLVE_CACHED or RWF_NOWAIT and falls back to the threadpool on EAGAIN). They return the
// result, or -errno instead of throwing: a refusal is an answer here, not an exception.

// openat2Now(dirfd, path, flags, mode, resolve) -> fd or -errno
Napi::Value Openat2Now(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 1);
  struct open_how how = {};
  how.flags = U32Arg(info, 2);
  how.mode = U32Arg(info, 3);
  how.resolve = U32Arg(info, 4);
  long r;
  do {
    r = syscall(SYS_openat2, IntArg(info, 0), path.c_str(), &how, sizeof how);
  } while (r < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : static_cast<double>(r));
}

// statxNow(dirfd, path, flags, mask, out: BigInt64Array(21)) -> 0 or -errno (fields as statx)
Napi::Value StatxNow(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 1);
  Napi::BigInt64Array out = info[4].As<Napi::BigInt64Array>();
  if (out.ElementLength() < kStatxFields) return Napi::Number::New(info.Env(), -EINVAL);
  struct statx s;
  int r;
  do {
    r = statx(IntArg(info, 0), path.c_str(), IntArg(info, 2), U32Arg(info, 3), &s);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Napi::Number::New(info.Env(), -errno);
  StatxFields(s, out.Data());
  return Napi::Number::New(info.Env(), 0);
}

// The iovecs of an array of Uint8Arrays (at most IOV_MAX).
bool IovecsArg(const Napi::CallbackInfo& info, size_t i, std::vector<struct iovec>& iov) {
  Napi::Array a = info[i].As<Napi::Array>();
  uint32_t n = a.Length();
  if (n > IOV_MAX) return false;
  iov.resize(n);
  for (uint32_t k = 0; k < n; k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsTypedArray()) return false;
    Napi::Uint8Array b = v.As<Napi::Uint8Array>();
    iov[k].iov_base = b.Data();
    iov[k].iov_len = b.ByteLength();
  }
  return true;
}

// preadv2Now(fd, buffers, offset, flags) / pwritev2Now(...) -> bytes or -errno
template <ssize_t (*Call)(int, const struct iovec*, int, off_t, int)>
Napi::Value VectoredNow(const Napi::CallbackInfo& info) {
  std::vector<struct iovec> iov;
  if (!IovecsArg(info, 1, iov)) return Napi::Number::New(info.Env(), -EINVAL);
  ssize_t r;
  do {
    r = Call(IntArg(info, 0), iov.data(), static_cast<int>(iov.size()), static_cast<off_t>(I64Arg(info, 2)), IntArg(info, 3));
  } while (r < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : static_cast<double>(r));
}

// mkdirat(dirfd, path, mode)
Napi::Value Mkdirat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  mode_t mode = U32Arg(info, 2);
  return Queue(new FsWork(info.Env(), "mkdirat", [=]() { return static_cast<long>(mkdirat(dirfd, path.c_str(), mode)); }));
}

// mknodat(dirfd, path, mode, major, minor)
Napi::Value Mknodat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  mode_t mode = U32Arg(info, 2);
  dev_t dev = makedev(U32Arg(info, 3), U32Arg(info, 4));
  return Queue(new FsWork(info.Env(), "mknodat", [=]() { return static_cast<long>(mknodat(dirfd, path.c_str(), mode, dev)); }));
}

// unlinkat(dirfd, path, flags)
Napi::Value Unlinkat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  int flags = IntArg(info, 2);
  return Queue(new FsWork(info.Env(), "unlinkat", [=]() { return static_cast<long>(unlinkat(dirfd, path.c_str(), flags)); }));
}

// renameat2(olddirfd, oldpath, newdirfd, newpath, flags)
Napi::Value Renameat2(const Napi::CallbackInfo& info) {
  int olddir = IntArg(info, 0);
  std::string oldpath = PathArg(info, 1);
  int newdir = IntArg(info, 2);
  std::string newpath = PathArg(info, 3);
  unsigned flags = U32Arg(info, 4);
  return Queue(new FsWork(info.Env(), "renameat2", [=]() {
    return static_cast<long>(syscall(SYS_renameat2, olddir, oldpath.c_str(), newdir, newpath.c_str(), flags));
  }));
}

// linkat(olddirfd, oldpath, newdirfd, newpath, flags)
Napi::Value Linkat(const Napi::CallbackInfo& info) {
  int olddir = IntArg(info, 0);
  std::string oldpath = PathArg(info, 1);
  int newdir = IntArg(info, 2);
  std::string newpath = PathArg(info, 3);
  int flags = IntArg(info, 4);
  return Queue(new FsWork(info.Env(), "linkat", [=]() {
    return static_cast<long>(linkat(olddir, oldpath.c_str(), newdir, newpath.c_str(), flags));
  }));
}

// symlinkat(target, newdirfd, linkpath)
Napi::Value Symlinkat(const Napi::CallbackInfo& info) {
  std::string target = PathArg(info, 0);
  int dirfd = IntArg(info, 1);
  std::string path = PathArg(info, 2);
  return Queue(new FsWork(info.Env(), "symlinkat", [=]() { return static_cast<long>(symlinkat(target.c_str(), dirfd, path.c_str())); }));
}

// readlinkat(dirfd, path) -> Buffer with the target's bytes (PATH_MAX at most)
Napi::Value Readlinkat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  auto buf = std::make_shared<std::vector<char>>(PATH_MAX);
  return Queue(new FsWork(
      info.Env(), "readlinkat",
      [=]() { return static_cast<long>(readlinkat(dirfd, path.c_str(), buf->data(), buf->size())); },
      [buf](Napi::Env env, long n) -> Napi::Value { return Napi::Buffer<char>::Copy(env, buf->data(), static_cast<size_t>(n)); }));
}

// fchmodat(dirfd, path, mode, flags)
Napi::Value Fchmodat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  mode_t mode = U32Arg(info, 2);
  int flags = IntArg(info, 3);
  return Queue(new FsWork(info.Env(), "fchmodat", [=]() { return static_cast<long>(fchmodat(dirfd, path.c_str(), mode, flags)); }));
}

// fchownat(dirfd, path, uid, gid, flags); uid/gid -1 (0xffffffff) leave that id alone
Napi::Value Fchownat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  uid_t uid = U32Arg(info, 2);
  gid_t gid = U32Arg(info, 3);
  int flags = IntArg(info, 4);
  return Queue(new FsWork(info.Env(), "fchownat", [=]() { return static_cast<long>(fchownat(dirfd, path.c_str(), uid, gid, flags)); }));
}

// utimensat(dirfd, path, atimeSec, atimeNsec, mtimeSec, mtimeNsec, flags); a nsec of UTIME_NOW
// or UTIME_OMIT has its usual meaning; an empty path needs AT_EMPTY_PATH (Linux >= 5.8)
Napi::Value Utimensat(const Napi::CallbackInfo& info) {
  int dirfd = IntArg(info, 0);
  std::string path = PathArg(info, 1);
  struct timespec ts[2];
  ts[0].tv_sec = I64Arg(info, 2);
  ts[0].tv_nsec = static_cast<long>(I64Arg(info, 3));
  ts[1].tv_sec = I64Arg(info, 4);
  ts[1].tv_nsec = static_cast<long>(I64Arg(info, 5));
  int flags = IntArg(info, 6);
  return Queue(new FsWork(info.Env(), "utimensat", [=]() {
    return static_cast<long>(utimensat(dirfd, path.c_str(), ts, flags));
  }));
}

// getdents64(fd, buffer, offset): lseek(fd, offset) then getdents64 into `buffer` (a
// positioned read, like pread) -> bytes filled (0 at the end)
Napi::Value Getdents64(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0);
  Napi::Uint8Array buf = info[1].As<Napi::Uint8Array>();
  int64_t offset = I64Arg(info, 2);
  uint8_t* data = buf.Data();
  size_t len = buf.ByteLength();
  FsWork* w = new FsWork(info.Env(), "getdents64", [=]() -> long {
    if (lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return -1;
    return static_cast<long>(syscall(SYS_getdents64, fd, data, len));
  });
  w->Hold(buf);
  return Queue(w);
}

// fstatfs(fd) -> BigInt64Array [type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen]
Napi::Value Fstatfs(const Napi::CallbackInfo& info) {
  int fd = IntArg(info, 0);
  auto st = std::make_shared<struct statfs>();
  return Queue(new FsWork(
      info.Env(), "fstatfs", [=]() { return static_cast<long>(fstatfs(fd, st.get())); },
      [st](Napi::Env env, long) -> Napi::Value {
        const struct statfs& s = *st;
        uint64_t fsid = static_cast<uint32_t>(s.f_fsid.__val[0]) | (static_cast<uint64_t>(static_cast<uint32_t>(s.f_fsid.__val[1])) << 32);
        int64_t v[9] = {static_cast<int64_t>(s.f_type), static_cast<int64_t>(s.f_bsize), static_cast<int64_t>(s.f_blocks),
                        static_cast<int64_t>(s.f_bfree), static_cast<int64_t>(s.f_bavail), static_cast<int64_t>(s.f_files),
                        static_cast<int64_t>(s.f_ffree), static_cast<int64_t>(fsid), static_cast<int64_t>(s.f_namelen)};
        Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, sizeof v);
        memcpy(ab.Data(), v, sizeof v);
        return Napi::BigInt64Array::New(env, 9, ab, 0);
      }));
}

Napi::Object FsConstants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* k, double v) { c.Set(k, Napi::Number::New(env, v)); };
  set("AT_FDCWD", AT_FDCWD);
  set("AT_EMPTY_PATH", AT_EMPTY_PATH);
  set("AT_SYMLINK_NOFOLLOW", AT_SYMLINK_NOFOLLOW);
  set("AT_SYMLINK_FOLLOW", AT_SYMLINK_FOLLOW);
  set("AT_REMOVEDIR", AT_REMOVEDIR);
  set("RESOLVE_BENEATH", RESOLVE_BENEATH);
  set("RESOLVE_NO_SYMLINKS", RESOLVE_NO_SYMLINKS);
  set("RESOLVE_NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS);
  set("RESOLVE_NO_XDEV", RESOLVE_NO_XDEV);
  set("RESOLVE_IN_ROOT", RESOLVE_IN_ROOT);
  set("RESOLVE_CACHED", RESOLVE_CACHED);
  set("RWF_NOWAIT", RWF_NOWAIT);
  set("AT_STATX_DONT_SYNC", AT_STATX_DONT_SYNC);
  set("O_RDONLY", O_RDONLY);
  set("O_WRONLY", O_WRONLY);
  set("O_RDWR", O_RDWR);
  set("O_CREAT", O_CREAT);
  set("O_EXCL", O_EXCL);
  set("O_NOCTTY", O_NOCTTY);
  set("O_TRUNC", O_TRUNC);
  set("O_APPEND", O_APPEND);
  set("O_NONBLOCK", O_NONBLOCK);
  set("O_DSYNC", O_DSYNC);
  set("O_SYNC", O_SYNC);
  set("O_DIRECTORY", O_DIRECTORY);
  set("O_NOFOLLOW", O_NOFOLLOW);
  set("O_NOATIME", O_NOATIME);
  set("O_CLOEXEC", O_CLOEXEC);
  set("O_PATH", O_PATH);
  set("O_LARGEFILE", O_LARGEFILE);
  set("UTIME_NOW", UTIME_NOW);
  set("UTIME_OMIT", UTIME_OMIT);
  set("STATX_BASIC_STATS", STATX_BASIC_STATS);
  set("STATX_BTIME", STATX_BTIME);
  set("RENAME_NOREPLACE", RENAME_NOREPLACE);
  return c;
}

}  // namespace

void InitFs(Napi::Env env, Napi::Object exports) {
  exports.Set("openat2", Napi::Function::New(env, Openat2));
  exports.Set("statx", Napi::Function::New(env, Statx));
  exports.Set("openat2Now", Napi::Function::New(env, Openat2Now));
  exports.Set("statxNow", Napi::Function::New(env, StatxNow));
  exports.Set("preadv2Now", Napi::Function::New(env, VectoredNow<preadv2>));
  exports.Set("pwritev2Now", Napi::Function::New(env, VectoredNow<pwritev2>));
  exports.Set("mkdirat", Napi::Function::New(env, Mkdirat));
  exports.Set("mknodat", Napi::Function::New(env, Mknodat));
  exports.Set("unlinkat", Napi::Function::New(env, Unlinkat));
  exports.Set("renameat2", Napi::Function::New(env, Renameat2));
  exports.Set("linkat", Napi::Function::New(env, Linkat));
  exports.Set("symlinkat", Napi::Function::New(env, Symlinkat));
  exports.Set("readlinkat", Napi::Function::New(env, Readlinkat));
  exports.Set("fchmodat", Napi::Function::New(env, Fchmodat));
  exports.Set("fchownat", Napi::Function::New(env, Fchownat));
  exports.Set("utimensat", Napi::Function::New(env, Utimensat));
  exports.Set("getdents64", Napi::Function::New(env, Getdents64));
  exports.Set("fstatfs", Napi::Function::New(env, Fstatfs));
  exports.Set("fsConstants", FsConstants(env));
}

}  // namespace nkvm
