// The TAP writer thread (tap-writer.cc), for tap.cc: a TAP's fd is closed only after its writer
// has stopped.
#pragma once
#include <napi.h>

namespace nkvm {

// Stop and join fd's writer thread, discarding what is still queued. False if it had none.
bool StopTapWriter(int fd);
void InitTapWriter(Napi::Env env, Napi::Object exports);

}  // namespace nkvm
