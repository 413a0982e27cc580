// Several VMs share the main thread: each run loop takes turns, and while all of them sit in
// an in-kernel HLT the event loop still runs timers (the kicker's kick is never lost between
// vCPUs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { Kvm, type Vcpu, type Vm } from '../../lib/index.js';
import { TSS_ADDR } from '../../lib/platform/layout.js';

function realModeVm(kvm: Kvm, code: number[]): { vm: Vm; vcpu: Vcpu } {
  const vm = kvm.createVm();
  vm.setTssAddr(TSS_ADDR);
  vm.createIrqchip();
  vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: 0x100000 }).bytes.set(code, 0x1000);
  const vcpu = vm.createVcpu(0);
  vcpu.setSregs({ cs: { base: 0n, selector: 0 } });
  vcpu.setRegs({ rip: 0x1000n, rflags: 2n });
  return { vm, vcpu };
}

test('two VMs halted on one thread: timers keep firing and both loops end on abort', { timeout: 60_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const kvm = Kvm.open();
  // A: 200 x `out 0x10, al`, then cli; hlt. B: cli; hlt at once.
  const a = realModeVm(kvm, [0xb9, 0xc8, 0x00, 0xe6, 0x10, 0xe2, 0xfc, 0xfa, 0xf4, 0xeb, 0xfd]);
  const b = realModeVm(kvm, [0xfa, 0xf4, 0xeb, 0xfd]);
  try {
    const ac = new AbortController();
    let ticks = 0;
    let outs = 0;
    let ticksWhenHalted = -1;
    // Abort once A has made its 200 exits and 5 more 10 ms ticks have fired with both vCPUs
    // halted (at least 20 in all). Not after a fixed 20 ticks: on a loaded host (the lab, with
    // a build beside it) A's exits alone once took longer than 200 ms.
    const iv = setInterval(() => {
      ticks++;
      if (outs === 200 && ticksWhenHalted < 0) ticksWhenHalted = ticks;
      if (ticksWhenHalted >= 0 && ticks >= ticksWhenHalted + 5 && ticks >= 20) {
        clearInterval(iv);
        ac.abort();
      }
    }, 10);
    await Promise.all([
      a.vcpu.runLoop((e) => { if (e.reason === 'io') outs++; }, { signal: ac.signal }),
      b.vcpu.runLoop(() => {}, { signal: ac.signal }),
    ]);
    t.diagnostic(`A's 200 exits done by tick ${ticksWhenHalted}; aborted at tick ${ticks}`);
    assert.ok(ticks >= 20);
    assert.equal(outs, 200);
  } finally {
    a.vm.close();
    b.vm.close();
    kvm.close();
  }
});
