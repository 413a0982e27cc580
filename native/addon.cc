// node-kvm native shim: one function per ioctl, no policy (DESIGN §3). Everything with a
// decision in it lives in lib/.
#include <napi.h>

#include "common.h"
#include "tap-writer.h"

namespace nkvm {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorClass", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { SetErrorClass(info); }));
  InitSystem(env, exports);
  InitVm(env, exports);
  InitVcpu(env, exports);
  InitMemory(env, exports);
  InitKick(env, exports);
  InitVcpuThread(env, exports);
  InitLayout(env, exports);
  InitTap(env, exports);
  InitTapWriter(env, exports);
  InitSnapshot(env, exports);
  InitMemfd(env, exports);
  InitFs(env, exports);
  InitEventfdWatch(env, exports);
  return exports;
}

}  // namespace nkvm

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return nkvm::Init(env, exports); }

NODE_API_MODULE(node_kvm, InitAddon)
