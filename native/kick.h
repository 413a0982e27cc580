// The kicker (DESIGN §4): vCPU 0 runs KVM_RUN synchronously on the main thread, so libuv cannot
// poll while the guest runs. A helper thread polls libuv's backend fd and the next timer
// deadline for it; when an event is due it kicks the vCPU out of KVM_RUN (immediate_exit plus
// a real-time signal), run() reports 'interrupted', and the TS run loop yields to the event loop.
#pragma once
#include <linux/kvm.h>
#include <pthread.h>
#include <uv.h>

namespace nkvm {

// The signal used to kick a thread out of KVM_RUN (handler is a no-op, SA_RESTART).
int KickSignal();
void InstallKickSignal();

// kvm_run of each vCPU fd, registered when its kvm_run page is mapped.
void RegisterRun(int fd, kvm_run* run);
void UnregisterRun(int fd);
kvm_run* RunFor(int fd);

// Main-thread KVM_RUN with kicker cooperation. Returns the exit reason, -1 for interrupted,
// or -2 with errno set on an ioctl failure.
int RunOnMainThread(int fd, kvm_run* run, uv_loop_t* loop);

}  // namespace nkvm
