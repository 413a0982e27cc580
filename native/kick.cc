#include "kick.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace nkvm {
namespace {

// --- kvm_run registry (fds are small integers) ---
std::mutex g_runs_lock;
std::vector<kvm_run*> g_runs;

// --- kicker state, guarded by mu ---
struct Kicker {
  std::mutex mu;
  std::condition_variable cv;
  std::thread thread;
  int refs = 0;
  bool stopping = false;
  int wake_fd = -1;         // eventfd: wakes the kicker out of poll() to re-read state
  int backend_fd = -1;      // uv_backend_fd of the main loop
  pthread_t main_thread{};
  kvm_run* in_run = nullptr;  // main-thread vCPU currently inside KVM_RUN
  bool kicked = false;        // a kick was delivered and not yet reported as 'interrupted'
  kvm_run* kicked_run = nullptr;  // whose immediate_exit the kick set
  int64_t deadline_ms = -1;   // next libuv timer, CLOCK_MONOTONIC ms; -1 = none
  std::vector<uv_timer_t*> timers;  // active timer handles, refreshed at each yield
  int64_t slice_deadline_ms = -1;   // end of this pump's time slice (several run loops share the thread)
};
// Heap-allocated and never destroyed: if the process exits while the kicker runs, a static
// std::thread destructor would call std::terminate.
Kicker& g_k = *new Kicker();

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void NoopHandler(int) {}

void KickLocked() {
  g_k.kicked = true;
  g_k.kicked_run = g_k.in_run;
  __atomic_store_n(&g_k.in_run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  pthread_kill(g_k.main_thread, KickSignal());
}

void KickerMain() {
  std::unique_lock<std::mutex> lk(g_k.mu);
  while (!g_k.stopping) {
    g_k.cv.wait(lk, [] { return g_k.stopping || (g_k.in_run != nullptr && !g_k.kicked); });
    if (g_k.stopping) break;
    int64_t dl = g_k.deadline_ms;
    lk.unlock();
    int timeout = -1;
    if (dl >= 0) {
      int64_t left = dl - NowMs();
      timeout = left < 0 ? 0 : static_cast<int>(left > 1000000 ? 1000000 : left);
    }
    pollfd fds[2] = {{g_k.backend_fd, POLLIN, 0}, {g_k.wake_fd, POLLIN, 0}};
    int r = poll(fds, 2, timeout);
    if (r > 0 && (fds[1].revents & POLLIN)) {
      uint64_t v;
      (void)!read(g_k.wake_fd, &v, sizeof v);
    }
    lk.lock();
    if (g_k.stopping) break;
    bool ready = r > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP));
    bool due = g_k.deadline_ms >= 0 && NowMs() >= g_k.deadline_ms;
    if ((ready || due) && g_k.in_run != nullptr && !g_k.kicked) KickLocked();
    // Not in KVM_RUN (the main thread is handling an exit or running the event loop): wait
    // on the condition variable for the next run() rather than spinning on a ready fd.
  }
}

// Next due time among the cached timer handles, in CLOCK_MONOTONIC ms (+1 ms: libuv may
// use the coarse clock, and kicking before the loop considers a timer due only spins).
int64_t NextDeadline(uv_loop_t* loop) {
  int64_t best = g_k.slice_deadline_ms;
  for (uv_timer_t* t : g_k.timers) {
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(t))) continue;
    int64_t due = static_cast<int64_t>(uv_now(loop) + uv_timer_get_due_in(t)) + 1;
    if (best < 0 || due < best) best = due;
  }
  return best;
}

void CollectTimer(uv_handle_t* h, void*) {
  if (h->type == UV_TIMER && !uv_is_closing(h)) g_k.timers.push_back(reinterpret_cast<uv_timer_t*>(h));
}

Napi::Value KickerRef(const Napi::CallbackInfo& info) {
  uv_loop_t* loop;
  napi_get_uv_event_loop(info.Env(), &loop);
  std::lock_guard<std::mutex> lk(g_k.mu);
  if (g_k.refs++ == 0) {
    InstallKickSignal();
    g_k.stopping = false;
    g_k.kicked = false;
    g_k.main_thread = pthread_self();
    g_k.backend_fd = uv_backend_fd(loop);
    g_k.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_k.thread = std::thread(KickerMain);
  }
  return info.Env().Undefined();
}

Napi::Value KickerUnref(const Napi::CallbackInfo& info) {
  std::thread t;
  {
    std::lock_guard<std::mutex> lk(g_k.mu);
    if (g_k.refs == 0 || --g_k.refs > 0) return info.Env().Undefined();
    g_k.stopping = true;
    uint64_t one = 1;
    (void)!write(g_k.wake_fd, &one, sizeof one);
    t = std::move(g_k.thread);
  }
  g_k.cv.notify_all();
  if (t.joinable()) t.join();
  std::lock_guard<std::mutex> lk(g_k.mu);
  close(g_k.wake_fd);
  g_k.wake_fd = -1;
  g_k.timers.clear();
  return info.Env().Undefined();
}

// Called by the TS run loop each time it resumes after yielding: re-learn the timer handles
// (safe here: handle memory is only freed in the loop's close phase, never mid-pump) and set
// the time slice (sliceMs > 0 when other run loops wait for their turn on this thread).
Napi::Value KickerRefreshTimers(const Napi::CallbackInfo& info) {
  uv_loop_t* loop;
  napi_get_uv_event_loop(info.Env(), &loop);
  double slice = info.Length() > 0 ? info[0].As<Napi::Number>().DoubleValue() : 0;
  std::lock_guard<std::mutex> lk(g_k.mu);
  g_k.slice_deadline_ms = slice > 0 ? NowMs() + static_cast<int64_t>(slice) : -1;
  g_k.timers.clear();
  uv_walk(loop, CollectTimer, nullptr);
  return info.Env().Undefined();
}

Napi::Value KickerStats(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lk(g_k.mu);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("refs", Napi::Number::New(info.Env(), g_k.refs));
  o.Set("timers", Napi::Number::New(info.Env(), static_cast<double>(g_k.timers.size())));
  o.Set("deadlineMs", Napi::Number::New(info.Env(), static_cast<double>(g_k.deadline_ms)));
  return o;
}

}  // namespace

int KickSignal() { return SIGRTMIN + 3; }

void InstallKickSignal() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = NoopHandler;
    sa.sa_flags = SA_RESTART;  // KVM_RUN still returns EINTR; other syscalls are not disturbed
    sigemptyset(&sa.sa_mask);
    sigaction(KickSignal(), &sa, nullptr);
  });
}

void RegisterRun(int fd, kvm_run* run) {
  std::lock_guard<std::mutex> l(g_runs_lock);
  if (static_cast<size_t>(fd) >= g_runs.size()) g_runs.resize(fd + 1, nullptr);
  g_runs[fd] = run;
}

void UnregisterRun(int fd) {
  std::lock_guard<std::mutex> l(g_runs_lock);
  if (static_cast<size_t>(fd) < g_runs.size()) g_runs[fd] = nullptr;
}

kvm_run* RunFor(int fd) {
  std::lock_guard<std::mutex> l(g_runs_lock);
  return static_cast<size_t>(fd) < g_runs.size() ? g_runs[fd] : nullptr;
}

int RunOnMainThread(int fd, kvm_run* run, uv_loop_t* loop) {
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(g_k.mu);
      if (g_k.refs > 0) {
        int64_t dl = NextDeadline(loop);
        bool earlier = dl >= 0 && (g_k.deadline_ms < 0 || dl < g_k.deadline_ms);
        g_k.deadline_ms = dl;
        // A kick meant for another vCPU (several VMs share this thread) that returned with a
        // real exit before seeing it: the point of a kick is to let the event loop run, so
        // pass it on to this vCPU. Otherwise the kicker, waiting for the kick to be consumed,
        // would never kick again while this vCPU halts.
        if (g_k.kicked && g_k.kicked_run != run) {
          g_k.kicked_run = run;
          __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        }
        g_k.in_run = run;
        if (earlier) {
          uint64_t one = 1;
          (void)!write(g_k.wake_fd, &one, sizeof one);
        }
      }
    }
    if (g_k.refs > 0) g_k.cv.notify_one();
    int r = ioctl(fd, KVM_RUN, 0);
    int err = errno;
    std::lock_guard<std::mutex> lk(g_k.mu);
    g_k.in_run = nullptr;
    if (r == 0) return static_cast<int>(run->exit_reason);
    if (err == EINTR || err == EAGAIN) {
      if (run->immediate_exit || (g_k.kicked && g_k.kicked_run == run)) {
        if (g_k.kicked_run == run) g_k.kicked = false;
        __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        return -1;
      }
      continue;  // a process-wide signal (SIGCHLD, SIGWINCH…) with no kick pending: re-enter
    }
    errno = err;
    return -2;
  }
}

void InitKick(Napi::Env env, Napi::Object exports) {
  exports.Set("kickerRef", Napi::Function::New(env, KickerRef));
  exports.Set("kickerUnref", Napi::Function::New(env, KickerUnref));
  exports.Set("kickerRefreshTimers", Napi::Function::New(env, KickerRefreshTimers));
  exports.Set("kickerStats", Napi::Function::New(env, KickerStats));
}

}  // namespace nkvm
