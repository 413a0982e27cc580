// Eventfd watchers: libuv polls an eventfd (KVM_IOEVENTFD signals it when the guest writes a
// doorbell), and on readiness we read (and so reset) its 8-byte counter and call JS with it.
// The guest's write costs no userspace exit; the device model runs from the event loop. No
// policy here: lib/kvm/eventfd-watch.ts owns the fd and decides what a signal means.
#include <dlfcn.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.h"

namespace nkvm {
namespace {

struct Watch {
  uv_poll_t poll;
  napi_env env = nullptr;
  int fd = -1;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
};

// Watchers of the process keyed by fd (workers each have their own env and loop, hence the lock).
std::mutex g_lock;
std::unordered_map<int, Watch*> g_watches;
std::unordered_set<napi_env> g_hooked;
size_t g_live = 0;

Watch* Find(int fd) {
  std::lock_guard<std::mutex> l(g_lock);
  auto it = g_watches.find(fd);
  return it == g_watches.end() ? nullptr : it->second;
}

void OnClosed(uv_handle_t* h) {
  delete static_cast<Watch*>(h->data);
  std::lock_guard<std::mutex> l(g_lock);
  g_live--;
}

void Retire(Watch* w) {
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_watches.erase(w->fd);
  }
  w->callback.Reset();
  w->context.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
}

// Env teardown: stop the watchers of that env (their fds belong to JS, which is going away too).
void EnvCleanup(void* arg) {
  napi_env env = static_cast<napi_env>(arg);
  std::vector<Watch*> mine;
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_hooked.erase(env);
    for (auto& [fd, w] : g_watches)
      if (w->env == env) mine.push_back(w);
  }
  for (Watch* w : mine) Retire(w);
}

// OnClosed runs after an env's teardown unloads addons (worker exit): keep the code mapped.
void PinLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&OnClosed), &info) != 0 && info.dli_fname != nullptr)
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  });
}

void OnReadable(uv_poll_t* handle, int status, int events) {
  Watch* w = static_cast<Watch*>(handle->data);
  uint64_t count = 0;
  int err = 0;
  if (status < 0) {
    err = -status;
  } else {
    ssize_t n;
    do {
      n = read(w->fd, &count, sizeof count);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // someone else reset it
      err = errno;
    }
  }
  if (err != 0) uv_poll_stop(&w->poll);
  Napi::Env env(w->env);
  Napi::HandleScope scope(env);
  Napi::Function fn = w->callback.Value();
  napi_async_context ctx = w->context ? static_cast<napi_async_context>(*w->context) : nullptr;
  // The callback may stop this watch; w stays allocated until OnClosed (a later loop phase).
  fn.MakeCallback(env.Global(), {Napi::Number::New(env, static_cast<double>(count)), Napi::Number::New(env, err)}, ctx);
  if (env.IsExceptionPending()) {
    Napi::Error e = env.GetAndClearPendingException();
    napi_fatal_exception(env, e.Value());
  }
}

// eventfdWatch(fd, onSignal(count, errno), ref): poll fd for readability from this thread's loop.
Napi::Value EventfdWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  if (!info[1].IsFunction()) {
    ThrowArg(env, "eventfdWatch: onSignal must be a function");
    return env.Undefined();
  }
  if (Find(fd) != nullptr) {
    ThrowErrno(env, EEXIST, "eventfdWatch");
    return env.Undefined();
  }
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);
  Watch* w = new Watch();
  w->env = env;
  w->fd = fd;
  w->poll.data = w;
  int e = uv_poll_init(loop, &w->poll, fd);
  if (e < 0) {
    delete w;
    ThrowErrno(env, -e, "uv_poll_init");
    return env.Undefined();
  }
  w->callback = Napi::Persistent(info[1].As<Napi::Function>());
  w->context = std::make_unique<Napi::AsyncContext>(env, "NodeKvmEventfd");
  {
    std::lock_guard<std::mutex> l(g_lock);
    g_watches[fd] = w;
    g_live++;
  }
  PinLibrary();
  bool hook;
  {
    std::lock_guard<std::mutex> l(g_lock);
    hook = g_hooked.insert(env).second;
  }
  if (hook) napi_add_env_cleanup_hook(env, EnvCleanup, env);
  e = uv_poll_start(&w->poll, UV_READABLE, OnReadable);
  if (e < 0) {
    Retire(w);
    ThrowErrno(env, -e, "uv_poll_start");
    return env.Undefined();
  }
  if (info.Length() > 2 && !info[2].ToBoolean().Value()) uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  return env.Undefined();
}

// eventfdUnwatch(fd): stop polling (the handle is freed asynchronously; the fd stays open).
Napi::Value EventfdUnwatch(const Napi::CallbackInfo& info) {
  Watch* w = Find(FdArg(info, 0));
  if (w != nullptr) Retire(w);
  return info.Env().Undefined();
}

// Watches allocated and not yet freed (leak checks in tests).
Napi::Value EventfdWatchCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> l(g_lock);
  return Napi::Number::New(info.Env(), static_cast<double>(g_live));
}

}  // namespace

void InitEventfdWatch(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdWatch", Napi::Function::New(env, EventfdWatch));
  exports.Set("eventfdUnwatch", Napi::Function::New(env, EventfdUnwatch));
  exports.Set("eventfdWatchCount", Napi::Function::New(env, EventfdWatchCount));
}

}  // namespace nkvm
