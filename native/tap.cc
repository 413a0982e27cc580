// TAP devices (DESIGN §7): open /dev/net/tun as a TAP without packet-info header (optionally
// with a virtio-net header before each frame, IFF_VNET_HDR, so that TSO frames go to the host
// stack whole), and read it from libuv with a uv_poll_t so the event loop never blocks. Each
// readiness event drains up to kMaxBatch frames (until EAGAIN) and hands them to JS in one call.
// No policy here: lib/net/tap.ts maps errnos to messages, counts drops, fills the headers and
// owns the fd's lifetime.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.h"
#include "tap-writer.h"

namespace nkvm {
namespace {

// Largest frame a TAP can hand us without IFF_VNET_HDR: MTU up to 65535 plus Ethernet and
// VLAN headers. Every read() is given at least this much room, so no frame is ever truncated.
constexpr size_t kMaxFrame = 65536 + 64;
// Frames per JS call. One readiness event drains at most this many; epoll is level-triggered,
// so whatever is left is picked up on the next loop iteration.
constexpr size_t kMaxBatch = 64;
// The read buffer: frames are read straight into a JS ArrayBuffer that every batch reuses, and
// handed over as views of it (JS copies what it keeps: lib/net/tap.ts).
constexpr size_t kBuffer = 256 * 1024;

struct Reader {
  uv_poll_t poll;
  napi_env env = nullptr;
  int fd = -1;
  // Bytes of virtio-net header before each frame read (IFF_VNET_HDR). The frame's view starts
  // after it; the header stays in the batch's buffer just before the frame, where
  // lib/net/tap.ts reads it when it enabled receive offloads (TUNSETOFFLOAD).
  size_t hdr_len = 0;
  bool ref = true;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
  // Owned by V8, so a view JS kept by mistake stays valid memory after the reader is gone.
  Napi::Reference<Napi::ArrayBuffer> buffer;
};

// All readers of the process, keyed by fd (fds are process-wide; workers each have their own
// env and loop, hence the lock). A reader leaves the map when its handle is closed and is
// freed in the uv_close callback.
std::mutex g_lock;
std::unordered_map<int, Reader*> g_readers;
std::unordered_set<napi_env> g_hooked_envs;
size_t g_live = 0;  // readers allocated and not yet freed (including those closing)

Reader* Find(int fd) {
  std::lock_guard<std::mutex> l(g_lock);
  auto it = g_readers.find(fd);
  return it == g_readers.end() ? nullptr : it->second;
}

void OnClosed(uv_handle_t* h) {
  Reader* r = static_cast<Reader*>(h->data);
  delete r;
  std::lock_guard<std::mutex> l(g_lock);
  g_live--;
}

// Stop polling and free the handle. Must run on the reader's loop thread; the fd stays open.
void Retire(Reader* r) {
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_readers.erase(r->fd);
  }
  r->callback.Reset();
  r->context.reset();
  r->buffer.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&r->poll), OnClosed);  // also stops the poll
}

// Env teardown (process exit, worker exit): release the JS references while the env is alive,
// close the handles and the fds still open. The close callbacks run later and touch no JS.
void EnvCleanup(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  std::vector<Reader*> mine;
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_hooked_envs.erase(env);
    for (auto& [fd, r] : g_readers)
      if (r->env == env) mine.push_back(r);
  }
  for (Reader* r : mine) {
    int fd = r->fd;
    Retire(r);
    StopTapWriter(fd);
    close(fd);
  }
}

// Keep this library mapped for the life of the process. A worker's env unloads its addons when
// it is torn down, but libuv still runs the close callbacks of handles closed during that
// teardown (EnvCleanup above): OnClosed must still be there to be called.
void PinLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&OnClosed), &info) != 0 && info.dli_fname != nullptr)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  });
}

void HookEnv(napi_env env) {
  PinLibrary();
  {
    std::lock_guard<std::mutex> l(g_lock);
    if (!g_hooked_envs.insert(env).second) return;
  }
  napi_add_env_cleanup_hook(env, EnvCleanup, env);
}

// The reader's buffer, a new one if JS detached it (transferred it to a worker, say). Needs a
// handle scope.
Napi::ArrayBuffer ReadBuffer(Napi::Env env, Reader* r) {
  Napi::ArrayBuffer buf = r->buffer.Value();
  if (buf.ByteLength() != kBuffer) {
    buf = Napi::ArrayBuffer::New(env, kBuffer);
    r->buffer = Napi::Persistent(buf);
  }
  return buf;
}

// Read frames into `buf` until EAGAIN, the batch bound or the buffer runs out. Returns the
// error that ended reading (0 for none); the poll is then stopped: an fd whose interface was
// deleted reports EBADFD forever.
int ReadBatch(Reader* r, uint8_t* buf, std::vector<std::pair<size_t, size_t>>& frames, size_t& used) {
  while (frames.size() < kMaxBatch && kBuffer - used >= kMaxFrame) {
    ssize_t n = read(r->fd, buf + used, kBuffer - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        int err = errno;
        uv_poll_stop(&r->poll);
        return err;
      }
      break;
    }
    if (n == 0) break;
    if (static_cast<size_t>(n) <= r->hdr_len) continue;  // a header without a frame: nothing to deliver
    frames.emplace_back(used + r->hdr_len, static_cast<size_t>(n) - r->hdr_len);
    used += static_cast<size_t>(n);
  }
  return 0;
}

// A Uint8Array view of the read buffer per frame: no copy, valid until the next read.
Napi::Array BatchToJs(Napi::Env env, Napi::ArrayBuffer buf, const std::vector<std::pair<size_t, size_t>>& frames) {
  Napi::Array batch = Napi::Array::New(env, frames.size());
  for (size_t i = 0; i < frames.size(); i++)
    batch.Set(static_cast<uint32_t>(i), Napi::Uint8Array::New(env, frames[i].second, buf, frames[i].first));
  return batch;
}

// libuv says the fd is readable: read a batch and make one JS call, onFrames(frames, errno).
void OnReadable(uv_poll_t* handle, int status, int events) {
  Reader* r = static_cast<Reader*>(handle->data);
  Napi::Env env(r->env);
  Napi::HandleScope scope(env);
  Napi::ArrayBuffer buf = ReadBuffer(env, r);
  size_t used = 0;
  std::vector<std::pair<size_t, size_t>> frames;  // (offset, length) in buf
  int err = status < 0 ? -status : ReadBatch(r, static_cast<uint8_t*>(buf.Data()), frames, used);  // status < 0: libuv stopped it (POLLERR)
  if (frames.empty() && err == 0) return;
  Napi::Array batch = BatchToJs(env, buf, frames);
  // The callback may close this reader (Retire); r stays allocated until OnClosed, which runs
  // in a later loop phase, and nothing below touches it after the call.
  Napi::Function fn = r->callback.Value();
  napi_async_context ctx = r->context ? static_cast<napi_async_context>(*r->context) : nullptr;
  fn.MakeCallback(env.Global(), {batch, Napi::Number::New(env, err)}, ctx);
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

// tapReadNow(fd) -> frames: read what is already queued, synchronously, without waiting for
// libuv. A NIC calls it right after transmitting, because the host stack often answers inside
// the write (an ACK, or data the ACK released) and the vCPU would otherwise re-enter the guest
// and wait for a kick before seeing it. It runs inside that vCPU exit, so it returns the array
// itself: an `errno` property appears on it only when reading failed. The frames share the
// read buffer with those of the batch before: a caller still holding those must not call it.
Napi::Value TapReadNow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Reader* r = Find(FdArg(info, 0));
  if (r == nullptr) return Napi::Array::New(env, 0);
  Napi::ArrayBuffer buf = ReadBuffer(env, r);
  size_t used = 0;
  std::vector<std::pair<size_t, size_t>> frames;
  int err = ReadBatch(r, static_cast<uint8_t*>(buf.Data()), frames, used);
  Napi::Array out = frames.empty() ? Napi::Array::New(env, 0) : BatchToJs(env, buf, frames);
  if (err != 0) out.Set("errno", Napi::Number::New(env, err));
  return out;
}

// tapOpen(name, flags, offloads): `offloads` (TUN_F_*) is given to TUNSETOFFLOAD when the TAP
// has a virtio-net header; a kernel that refuses it fails the open (the caller asked for it).
Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : std::string();
  int extra = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  extra &= IFF_VNET_HDR | IFF_PERSIST;  // the caller may ask for these; IFF_TAP|IFF_NO_PI always
  unsigned offloads = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 0;
  offloads &= TUN_F_CSUM | TUN_F_TSO4;
  if (name.size() >= IFNAMSIZ) {
    ThrowArg(env, "interface name longer than 15 bytes");
    return env.Undefined();
  }
  int fd;
  do {
    fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    ThrowErrno(env, errno, "open");
    return env.Undefined();
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | extra);
  if (IoctlRetry(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "TUNSETIFF");
    return env.Undefined();
  }
  // TUNGETIFF reports the flags as they now are: IFF_PERSIST is set only when we attached to an
  // interface an administrator created persistent (`ip tuntap add ... user U`); a new one is
  // never persistent, so closing the fd removes it.
  struct ifreq got;
  memset(&got, 0, sizeof got);
  if (IoctlRetry(fd, TUNGETIFF, &got) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "TUNGETIFF");
    return env.Undefined();
  }
  int hdr_len = 0;
  if ((got.ifr_flags & IFF_VNET_HDR) != 0 && IoctlRetry(fd, TUNGETVNETHDRSZ, &hdr_len) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "TUNGETVNETHDRSZ");
    return env.Undefined();
  }
  if (hdr_len > 0 && offloads != 0 && IoctlRetry(fd, TUNSETOFFLOAD, static_cast<unsigned long>(offloads)) < 0) {
    int e = errno;
    close(fd);
    ThrowErrno(env, e, "TUNSETOFFLOAD");
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("offloads", Napi::Number::New(env, hdr_len > 0 ? offloads : 0));
  out.Set("vnetHdrLen", Napi::Number::New(env, hdr_len));
  out.Set("name", Napi::String::New(env, std::string(got.ifr_name, strnlen(got.ifr_name, IFNAMSIZ))));
  out.Set("persistent", Napi::Boolean::New(env, (got.ifr_flags & IFF_PERSIST) != 0));
  return out;
}

Napi::Value TapStartReading(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  if (!info[1].IsFunction()) {
    ThrowArg(env, "tapStartReading: onFrames must be a function");
    return env.Undefined();
  }
  Reader* r = Find(fd);
  if (r == nullptr) {
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    r = new Reader();
    r->env = env;
    r->fd = fd;
    r->hdr_len = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 0;
    r->buffer = Napi::Persistent(Napi::ArrayBuffer::New(env, kBuffer));
    r->poll.data = r;
    int e = uv_poll_init(loop, &r->poll, fd);
    if (e < 0) {
      delete r;
      ThrowErrno(env, -e, "uv_poll_init");
      return env.Undefined();
    }
    r->context = std::make_unique<Napi::AsyncContext>(env, "NodeKvmTap");
    {
      std::lock_guard<std::mutex> l(g_lock);
      g_readers[fd] = r;
      g_live++;
    }
    HookEnv(env);
  }
  r->callback = Napi::Persistent(info[1].As<Napi::Function>());
  int e = uv_poll_start(&r->poll, UV_READABLE, OnReadable);
  if (e < 0) {
    ThrowErrno(env, -e, "uv_poll_start");
    return env.Undefined();
  }
  if (!r->ref) uv_unref(reinterpret_cast<uv_handle_t*>(&r->poll));
  return env.Undefined();
}

Napi::Value TapStopReading(const Napi::CallbackInfo& info) {
  Reader* r = Find(FdArg(info, 0));
  if (r != nullptr) uv_poll_stop(&r->poll);
  return info.Env().Undefined();
}

// Whether an active reader keeps the event loop alive (like socket.ref()/unref()).
Napi::Value TapSetRef(const Napi::CallbackInfo& info) {
  Reader* r = Find(FdArg(info, 0));
  if (r != nullptr) {
    r->ref = info[1].ToBoolean().Value();
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&r->poll);
    if (r->ref)
      uv_ref(h);
    else
      uv_unref(h);
  }
  return info.Env().Undefined();
}

// tapWrite(fd, frame, header?): one write of header + frame (writev, no copy). Bytes written,
// or -1 when the kernel would block or has no buffer (the caller counts a drop).
Napi::Value TapWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  if (!info[1].IsTypedArray() || (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsTypedArray())) {
    ThrowArg(env, "tapWrite: frame and header must be Uint8Arrays");
    return env.Undefined();
  }
  Napi::Uint8Array frame = info[1].As<Napi::Uint8Array>();
  struct iovec iov[2];
  int cnt = 0;
  if (info.Length() > 2 && info[2].IsTypedArray()) {
    Napi::Uint8Array hdr = info[2].As<Napi::Uint8Array>();
    iov[cnt++] = {hdr.Data(), hdr.ByteLength()};
  }
  iov[cnt++] = {frame.Data(), frame.ByteLength()};
  ssize_t n;
  do {
    n = writev(fd, iov, cnt);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, "write");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// Stop reading, free the poll handle (asynchronously, via uv_close) and close the fd.
Napi::Value TapClose(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  StopTapWriter(fd);  // joined first: its writes must not reach a reused fd number
  Reader* r = Find(fd);
  if (r != nullptr) Retire(r);  // unregisters the fd from epoll before it is closed
  if (close(fd) < 0 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

// Readers allocated and not yet freed (leak checks in tests).
Napi::Value TapReaderCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> l(g_lock);
  return Napi::Number::New(info.Env(), static_cast<double>(g_live));
}

}  // namespace

void InitTap(Napi::Env env, Napi::Object exports) {
  exports.Set("tapOpen", Napi::Function::New(env, TapOpen));
  exports.Set("tapStartReading", Napi::Function::New(env, TapStartReading));
  exports.Set("tapStopReading", Napi::Function::New(env, TapStopReading));
  exports.Set("tapSetRef", Napi::Function::New(env, TapSetRef));
  exports.Set("tapWrite", Napi::Function::New(env, TapWrite));
  exports.Set("tapReadNow", Napi::Function::New(env, TapReadNow));
  exports.Set("tapClose", Napi::Function::New(env, TapClose));
  exports.Set("tapReaderCount", Napi::Function::New(env, TapReaderCount));
}

}  // namespace nkvm
