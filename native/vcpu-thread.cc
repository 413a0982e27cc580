// Extra vCPUs (SMP) run KVM_RUN on native threads (DESIGN §4). Only exits that need the device
// model cross to the main thread: the thread posts the exit through a thread-safe function and
// waits until JS has handled it (for an 'in' the data must be filled before the next KVM_RUN).
// Everything the in-kernel irqchip handles (HLT, INIT/SIPI, LAPIC timer) never leaves the kernel.
#include <linux/kvm.h>
#include <signal.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common.h"
#include "kick.h"

namespace nkvm {
namespace {

struct VcpuThread {
  int fd = -1;
  kvm_run* run = nullptr;
  std::thread thread;
  pthread_t tid{};
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool handled = false;
  bool started = false;
  Napi::ThreadSafeFunction tsfn;
};

std::mutex g_lock;
// Never destroyed: at process exit live vCPU threads just end with the process (a static
// destructor would destroy joinable std::threads and call std::terminate).
std::unordered_map<int, std::shared_ptr<VcpuThread>>& g_threads = *new std::unordered_map<int, std::shared_ptr<VcpuThread>>();

void ThreadMain(std::shared_ptr<VcpuThread> t) {
  {
    std::lock_guard<std::mutex> l(t->mu);
    t->tid = pthread_self();
    t->started = true;
  }
  t->cv.notify_all();
  for (;;) {
    {
      std::lock_guard<std::mutex> l(t->mu);
      if (t->stop) break;
    }
    int r = ioctl(t->fd, KVM_RUN, 0);
    int err = r < 0 ? errno : 0;
    if (r < 0 && (err == EINTR || err == EAGAIN)) {
      __atomic_store_n(&t->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
      continue;
    }
    int reason = r < 0 ? -2 : static_cast<int>(t->run->exit_reason);
    {
      std::lock_guard<std::mutex> l(t->mu);
      t->handled = false;
    }
    std::shared_ptr<VcpuThread> keep = t;
    napi_status s = t->tsfn.BlockingCall([keep, reason, err](Napi::Env env, Napi::Function cb) {
      bool stopNow = true;
      if (env != nullptr && cb != nullptr) {
        Napi::Value res = cb.Call({Napi::Number::New(env, keep->fd), Napi::Number::New(env, reason), Napi::Number::New(env, err)});
        stopNow = res.IsBoolean() && res.As<Napi::Boolean>().Value();
        if (env.IsExceptionPending()) stopNow = true;
      }
      std::lock_guard<std::mutex> l(keep->mu);
      keep->handled = true;
      if (stopNow) keep->stop = true;
      keep->cv.notify_all();
    });
    std::unique_lock<std::mutex> l(t->mu);
    if (s != napi_ok) t->stop = true;
    t->cv.wait(l, [&] { return t->handled || t->stop; });
    if (reason == -2) t->stop = true;
  }
}

// startVcpuThread(vcpufd, onExit(fd, reason, errno) -> boolean stop)
Napi::Value StartVcpuThread(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  kvm_run* run = RunFor(fd);
  if (run == nullptr) {
    ThrowErrno(info.Env(), EBADF, "KVM_RUN");
    return info.Env().Undefined();
  }
  InstallKickSignal();
  auto t = std::make_shared<VcpuThread>();
  t->fd = fd;
  t->run = run;
  t->tsfn = Napi::ThreadSafeFunction::New(info.Env(), info[1].As<Napi::Function>(), "node-kvm-vcpu", 0, 1);
  t->tsfn.Unref(info.Env());  // the machine's run loop, not this thread, keeps the process alive
  {
    std::lock_guard<std::mutex> l(g_lock);
    if (g_threads.count(fd) != 0) {
      t->tsfn.Release();
      ThrowErrno(info.Env(), EBUSY, "startVcpuThread");
      return info.Env().Undefined();
    }
    g_threads[fd] = t;
  }
  t->thread = std::thread(ThreadMain, t);
  std::unique_lock<std::mutex> l(t->mu);
  t->cv.wait(l, [&] { return t->started; });
  return info.Env().Undefined();
}

// stopVcpuThread(vcpufd): kick the thread out of KVM_RUN, join it. Idempotent.
Napi::Value StopVcpuThread(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  std::shared_ptr<VcpuThread> t;
  {
    std::lock_guard<std::mutex> l(g_lock);
    auto it = g_threads.find(fd);
    if (it == g_threads.end()) return info.Env().Undefined();
    t = it->second;
    g_threads.erase(it);
  }
  {
    std::lock_guard<std::mutex> l(t->mu);
    t->stop = true;
    __atomic_store_n(&t->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    pthread_kill(t->tid, KickSignal());
  }
  t->cv.notify_all();
  if (t->thread.joinable()) t->thread.join();
  __atomic_store_n(&t->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
  t->tsfn.Release();
  return info.Env().Undefined();
}

Napi::Value VcpuThreadCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> l(g_lock);
  return Napi::Number::New(info.Env(), static_cast<double>(g_threads.size()));
}

}  // namespace

void InitVcpuThread(Napi::Env env, Napi::Object exports) {
  exports.Set("startVcpuThread", Napi::Function::New(env, StartVcpuThread));
  exports.Set("stopVcpuThread", Napi::Function::New(env, StopVcpuThread));
  exports.Set("vcpuThreadCount", Napi::Function::New(env, VcpuThreadCount));
}

}  // namespace nkvm
