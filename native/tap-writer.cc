// A writer thread per TAP (DESIGN §7): the NIC's transmit path copies each frame (and its
// virtio-net header) into a bounded queue and returns; this thread does the write(). A write
// into a TAP runs the host's whole receive path for the frame (IP, TCP, waking the reader,
// often sending the ACK), and on the vCPU's thread that time is an MMIO exit that lasts as
// long, with the guest's clock running and the guest stuck inside its driver (DESIGN §9).
// No policy here: lib/net/tap.ts decides when to use it and turns the counters into stats.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "tap-writer.h"

namespace nkvm {
namespace {

struct Writer {
  int fd = -1;
  size_t max_bytes = 0;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  // Each entry: header + frame in one buffer (one write), and the header's length.
  std::deque<std::pair<std::vector<uint8_t>, size_t>> queue;
  size_t queued_bytes = 0;
  bool stop = false;
  bool busy = false;           // a write is under way (the queue may already be empty)
  std::condition_variable idle;  // the queue is empty and no write is under way
  // Counters the thread keeps; read at any time from the main thread.
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> errors{0};
  // The errno that ended writing for good (EBADFD: the interface is gone), 0 while healthy.
  std::atomic<int> fatal{0};
};

std::mutex g_lock;
// Never destroyed: a writer still running at process exit ends with the process (a static
// destructor would destroy a joinable std::thread and call std::terminate).
std::unordered_map<int, std::shared_ptr<Writer>>& g_writers = *new std::unordered_map<int, std::shared_ptr<Writer>>();

std::shared_ptr<Writer> Find(int fd) {
  std::lock_guard<std::mutex> l(g_lock);
  auto it = g_writers.find(fd);
  return it == g_writers.end() ? nullptr : it->second;
}

void WriteOne(Writer& w, const std::vector<uint8_t>& buf, size_t hlen) {
  if (w.fatal.load() != 0) {
    w.dropped++;
    return;
  }
  ssize_t n;
  do {
    n = write(w.fd, buf.data(), buf.size());
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    w.frames++;
    w.bytes += static_cast<size_t>(n) > hlen ? static_cast<size_t>(n) - hlen : 0;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EIO) {
    w.dropped++;  // no room, or the host side of the TAP is down: the frame is lost
  } else {
    w.errors++;
    if (errno == EBADFD || errno == EBADF) w.fatal.store(errno);
  }
}

void WriterMain(std::shared_ptr<Writer> w) {
  for (;;) {
    std::vector<uint8_t> buf;
    size_t hlen;
    {
      std::unique_lock<std::mutex> l(w->mu);
      w->cv.wait(l, [&] { return w->stop || !w->queue.empty(); });
      if (w->stop) return;  // what is still queued is discarded with the writer
      buf = std::move(w->queue.front().first);
      hlen = w->queue.front().second;
      w->queue.pop_front();
      w->queued_bytes -= buf.size();
      w->busy = true;
    }
    WriteOne(*w, buf, hlen);
    {
      std::lock_guard<std::mutex> l(w->mu);
      w->busy = false;
      if (w->queue.empty()) w->idle.notify_all();
    }
  }
}

// tapWriterStart(fd, maxQueuedBytes): start the fd's writer thread (idempotent).
Napi::Value TapWriterStart(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  double max = info[1].As<Napi::Number>().DoubleValue();
  std::lock_guard<std::mutex> l(g_lock);
  if (g_writers.count(fd) != 0) return info.Env().Undefined();
  auto w = std::make_shared<Writer>();
  w->fd = fd;
  w->max_bytes = max > 0 ? static_cast<size_t>(max) : 0;
  w->thread = std::thread(WriterMain, w);
  g_writers[fd] = w;
  return info.Env().Undefined();
}

// tapWriteQueued(fd, frame, header?) -> 1 queued, 0 dropped (queue full), -errno once the
// writer has stopped for good (the caller takes the link down).
Napi::Value TapWriteQueued(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Writer> w = Find(FdArg(info, 0));
  if (w == nullptr) {
    ThrowErrno(env, EBADF, "tapWriteQueued");
    return env.Undefined();
  }
  if (!info[1].IsTypedArray() || (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsTypedArray())) {
    ThrowArg(env, "tapWriteQueued: frame and header must be Uint8Arrays");
    return env.Undefined();
  }
  int fatal = w->fatal.load();
  if (fatal != 0) return Napi::Number::New(env, -fatal);
  Napi::Uint8Array frame = info[1].As<Napi::Uint8Array>();
  size_t hlen = 0;
  const uint8_t* hdata = nullptr;
  if (info.Length() > 2 && info[2].IsTypedArray()) {
    Napi::Uint8Array hdr = info[2].As<Napi::Uint8Array>();
    hlen = hdr.ByteLength();
    hdata = hdr.Data();
  }
  size_t total = hlen + frame.ByteLength();
  {
    std::lock_guard<std::mutex> l(w->mu);
    if (w->queued_bytes + total > w->max_bytes) {
      w->dropped++;
      return Napi::Number::New(env, 0);
    }
    std::vector<uint8_t> buf(total);
    if (hlen > 0) memcpy(buf.data(), hdata, hlen);
    memcpy(buf.data() + hlen, frame.Data(), frame.ByteLength());
    w->queued_bytes += total;
    w->queue.emplace_back(std::move(buf), hlen);
  }
  w->cv.notify_one();
  return Napi::Number::New(env, 1);
}

// tapWriterStats(fd) -> { frames, bytes, dropped, errors } or undefined.
// Waits (up to a second) for what is queued to be written first, so the counts cover every
// frame sent before the call.
Napi::Value TapWriterStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Writer> w = Find(FdArg(info, 0));
  if (w == nullptr) return env.Undefined();
  {
    std::unique_lock<std::mutex> l(w->mu);
    w->idle.wait_for(l, std::chrono::seconds(1), [&] { return w->stop || (w->queue.empty() && !w->busy); });
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("frames", Napi::Number::New(env, static_cast<double>(w->frames.load())));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(w->bytes.load())));
  o.Set("dropped", Napi::Number::New(env, static_cast<double>(w->dropped.load())));
  o.Set("errors", Napi::Number::New(env, static_cast<double>(w->errors.load())));
  return o;
}

Napi::Value TapWriterCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> l(g_lock);
  return Napi::Number::New(info.Env(), static_cast<double>(g_writers.size()));
}

}  // namespace

bool StopTapWriter(int fd) {
  std::shared_ptr<Writer> w;
  {
    std::lock_guard<std::mutex> l(g_lock);
    auto it = g_writers.find(fd);
    if (it == g_writers.end()) return false;
    w = it->second;
    g_writers.erase(it);
  }
  {
    std::lock_guard<std::mutex> l(w->mu);
    w->stop = true;
  }
  w->cv.notify_all();
  w->idle.notify_all();
  // Joined before the caller closes the fd: a write must never reach a reused fd number.
  if (w->thread.joinable()) w->thread.join();
  return true;
}

void InitTapWriter(Napi::Env env, Napi::Object exports) {
  exports.Set("tapWriterStart", Napi::Function::New(env, TapWriterStart));
  exports.Set("tapWriteQueued", Napi::Function::New(env, TapWriteQueued));
  exports.Set("tapWriterStats", Napi::Function::New(env, TapWriterStats));
  exports.Set("tapWriterCount", Napi::Function::New(env, TapWriterCount));
}

}  // namespace nkvm
