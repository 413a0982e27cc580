// 1,000 create/close cycles of the whole handle chain leave no fd and no thread behind (200
// inside the nested lab, where every ioctl is emulated and the host tier has run the 1,000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { Kvm } from '../../lib/index.js';

const fdCount = (): number => readdirSync('/proc/self/fd').length;
const threadCount = (): number => readdirSync('/proc/self/task').length;
const CYCLES = process.env.NODE_KVM_LAB === '1' ? 200 : 1000;

test(`${CYCLES} Kvm -> Vm -> memory -> Vcpu -> close cycles leak no fds and no threads`, { timeout: 300_000 }, (t) => {
  if (!requireKvm(t)) return;
  // One warm-up cycle: lazy one-time set-up (addon load, kicker thread) is not a leak.
  const once = (): void => {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    const region = vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: 64 * 1024 });
    region.bytes[0] = 0xf4; // touch the mapping
    const vcpu = vm.createVcpu(0);
    vcpu.getRegs();
    vcpu.close();
    vm.close();
    kvm.close();
  };
  once();
  const fds0 = fdCount();
  const threads0 = threadCount();
  const t0 = performance.now();
  for (let i = 0; i < CYCLES; i++) once();
  const ms = performance.now() - t0;
  const fds1 = fdCount();
  const threads1 = threadCount();
  t.diagnostic(`${CYCLES} cycles in ${ms.toFixed(0)} ms (${(ms * 1000 / CYCLES).toFixed(0)} µs each); fds ${fds0}->${fds1}, threads ${threads0}->${threads1}`);
  assert.equal(fds1, fds0);
  assert.equal(threads1, threads0);
});
