// SMP start-up through the in-kernel LAPIC: the BSP (vCPU 0, main thread run loop) sends
// INIT + STARTUP IPIs; the APs (native threads via vcpu.startThread) wake in the trampoline,
// switch to protected mode, report their APIC ids, count themselves in; the BSP reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { PORT } from '../guests/build.js';
import { attach, createGuestVm, Recorder, runAsync } from '../guests/run.js';
import type { VcpuExit } from '../../lib/index.js';

for (const n of [2, 4]) {
  test(`SMP guest: BSP starts ${n - 1} AP(s) with INIT/SIPI, each reports its APIC id`, { timeout: 60_000 }, async (t) => {
    if (!requireKvm(t)) return;
    using g = createGuestVm({ guest: 'smp', irqchip: true, vcpus: n });
    const ids = new Recorder();
    const report = new Recorder();
    attach(g, 'PARAM', new Recorder().feed(n));
    attach(g, 'APIC_ID', ids);
    attach(g, 'REPORT', report);
    const apFailures: VcpuExit[] = [];
    for (const ap of g.vcpus.slice(1)) {
      ap.startThread((exit) => {
        if (exit.reason === 'io') g.pio.handleIo(exit);
        else if (exit.reason === 'mmio') g.mmio.handleMmio(exit);
        else {
          apFailures.push(exit);
          return 'stop';
        }
        return undefined;
      });
    }
    for (const ap of g.vcpus.slice(1)) assert.ok(ap.isThreaded);
    const t0 = performance.now();
    await runAsync(g, (e) => e.reason === 'io' && e.port === PORT.REPORT);
    t.diagnostic(`${n} vCPUs up in ${(performance.now() - t0).toFixed(1)} ms`);
    assert.deepEqual(apFailures, []);
    assert.deepEqual(report.values(), [n - 1]);
    assert.deepEqual(ids.values().sort((a, b) => a - b), Array.from({ length: n - 1 }, (_, i) => i + 1));
    for (const ap of g.vcpus.slice(1)) ap.stopThread();
  });
}
