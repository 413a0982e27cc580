// One way to fail: throw the TS-defined KvmError (code, errno, syscall). The class is handed to
// native once at load (setErrorClass), so native never builds string-only errors.
#pragma once
#include <napi.h>

namespace nkvm {

// Store the KvmError constructor for this env.
void SetErrorClass(const Napi::CallbackInfo& info);

// Throw KvmError(code-from-errno, errno, syscall) as a JS exception and return.
void ThrowErrno(Napi::Env env, int err, const char* syscall);

// The KvmError for errno, as a value (e.g. to reject a Promise with).
Napi::Value ErrnoError(Napi::Env env, int err, const char* syscall);

// Throw a TypeError-ish argument error with code ERR_INVALID_ARG.
void ThrowArg(Napi::Env env, const char* message);

}  // namespace nkvm
