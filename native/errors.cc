#include "errors.h"

#include <string.h>

#include <string>

namespace nkvm {

namespace {
struct ErrorState {
  Napi::FunctionReference kvmError;
};

ErrorState* State(Napi::Env env) {
  auto* s = env.GetInstanceData<ErrorState>();
  if (s == nullptr) {
    s = new ErrorState();
    env.SetInstanceData(s);
  }
  return s;
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  return "E" + std::to_string(err);
}
}  // namespace

void SetErrorClass(const Napi::CallbackInfo& info) {
  State(info.Env())->kvmError = Napi::Persistent(info[0].As<Napi::Function>());
}

Napi::Value ErrnoError(Napi::Env env, int err, const char* syscall) {
  std::string code = ErrnoName(err);
  std::string msg = std::string(syscall) + " failed: " + code + " (" + strerror(err) + ")";
  ErrorState* s = State(env);
  if (s->kvmError.IsEmpty()) {
    Napi::Error e = Napi::Error::New(env, msg);
    e.Set("code", code);
    e.Set("errno", Napi::Number::New(env, err));
    e.Set("syscall", syscall);
    return e.Value();
  }
  return s->kvmError.New({Napi::String::New(env, code), Napi::Number::New(env, err),
                          Napi::String::New(env, syscall), Napi::String::New(env, msg)});
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  Napi::Error(env, ErrnoError(env, err, syscall)).ThrowAsJavaScriptException();
}

void ThrowArg(Napi::Env env, const char* message) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Set("code", "ERR_INVALID_ARG");
  e.ThrowAsJavaScriptException();
}

}  // namespace nkvm
