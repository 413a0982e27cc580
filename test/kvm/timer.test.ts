// The in-kernel PIT raises IRQ0 through the in-kernel PIC while the guest waits in `sti; hlt`:
// each tick is taken by the guest's handler (which reports it), and the run loop keeps the
// event loop alive while the vCPU sleeps in the kernel between ticks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { PORT } from '../guests/build.js';
import { attach, createGuestVm, Recorder, runAsync } from '../guests/run.js';

test('timer guest: N PIT ticks delivered to a halted vCPU, counted in order', { timeout: 30_000 }, async (t) => {
  if (!requireKvm(t)) return;
  // 30 ticks (~300 ms): a host so loaded that the process is descheduled for a while gets the
  // missed ticks re-injected at once on its return, and the HLT waits in which host timers
  // run are only those after; with 10 ticks a 100 ms stall once left none (0 timers fired).
  const N = 30;
  using g = createGuestVm({ guest: 'timer', irqchip: true });
  const ticks = new Recorder();
  const report = new Recorder();
  const tickTimes: number[] = [];
  attach(g, 'PARAM', new Recorder().feed(N));
  attach(g, 'TICK', {
    read: () => 0,
    write: (offset, size, value) => {
      tickTimes.push(performance.now());
      ticks.write(offset, size, value);
      // Hold the vCPU inside the handler of tick N for several PIT periods, as a loaded host
      // does when it deschedules it: KVM's PIT queues the ticks it misses and re-injects them
      // after the EOI. The guest must still count exactly N (it masks IRQ0 in that handler).
      if (value === N) {
        const until = performance.now() + 60;
        while (performance.now() < until);
      }
    },
  });
  attach(g, 'REPORT', report);
  let timersFired = 0;
  const iv = setInterval(() => timersFired++, 5);
  try {
    const start = performance.now();
    const last = await runAsync(g, (e) => e.reason === 'io' && e.port === PORT.REPORT);
    const elapsed = performance.now() - start;
    assert.ok(last !== undefined);
    assert.deepEqual(ticks.values(), Array.from({ length: N }, (_, i) => i + 1));
    assert.deepEqual(report.values(), [N]);
    // A ~100 Hz rate generator: N ticks cannot arrive faster than the PIT counts.
    assert.ok(elapsed >= (N - 1) * 9, `N ticks took ${elapsed.toFixed(1)} ms`);
    const gaps = tickTimes.slice(1).map((v, i) => v - tickTimes[i]!).sort((a, b) => a - b);
    t.diagnostic(`${N} ticks in ${elapsed.toFixed(1)} ms, median gap ${gaps[gaps.length >> 1]!.toFixed(2)} ms, ` +
      `host timers fired meanwhile: ${timersFired}`);
    assert.ok(timersFired > 0, 'host timers ran while the guest waited in HLT');
  } finally {
    clearInterval(iv);
  }
});
