// Mappings shared between the shim's files: a host mapping handed to JS as an external
// ArrayBuffer that `munmap()` (memory.cc) detaches and releases, with a GC finalizer as the
// safety net.
#pragma once
#include <napi.h>
#include <stddef.h>

namespace nkvm {

Napi::Value WrapMapping(Napi::Env env, void* addr, size_t len);

// True when [addr, addr+len) lies in fresh guest RAM (shared anonymous memory) on a host
// without swap: there a page mincore() reports not resident was never touched, so it reads as
// zeros, and reading it would only allocate it.
bool HolesAreNotResident(const void* addr, size_t len);

}  // namespace nkvm
