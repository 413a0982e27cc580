// One guest write must not keep the main thread (vCPU 0, the event loop, every other VM of the
// process) for long. test/guests/plat-tso-flood.S queues 1,024 LargeSend descriptors of 64 KiB
// at MSS 1 and writes TxPoll once (the RTL8139C+ refuses MSS 1), then 16 at MSS 8 (130,976
// segments cut here) started by 4,096 TxPoll writes in one `rep outsb`, and waits for the
// descriptors in RAM without exiting. A setInterval(…, 10) runs all along: the time between its
// ticks, less any time the kernel left this thread waiting for a CPU, GC paused it or the whole
// process was stalled (see test/helpers/gap-monitor.ts), stays under 50 ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { GapMonitor, type GapReport } from '../helpers/gap-monitor.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { NullBackend } from '../../lib/net/backend.js';
import { PCI_IO_START } from '../../lib/platform/layout.js';

/** What the guest's frame makes at MSS 8: a 65,481-byte payload in 8-byte segments, 16 times. */
const SEGMENTS = 16 * Math.ceil((0xffff - 54) / 8);
const MAX_GAP_MS = 50;

interface Attempt { gaps: GapReport; seconds: number; deferred: number }

/** One run of the guest on a fresh machine, checked; returns what the gap monitor saw. */
async function attempt(kernel: Uint8Array): Promise<Attempt> {
  const backend = new NullBackend();
  try {
    await using m = await Machine.create({ kernel, memory: '32M', net: [{ backend }], flat: { mode: 'protected' } });
    const nic = m.platform.nics[0]!;
    assert.equal(nic.barAddress(0), PCI_IO_START, 'the guest drives the NIC at NIC_IO = PCI_IO_START');
    const monitor = new GapMonitor(10, () => `${nic.stats.txFrames} segments, ${m.counters.io} PIO exits`);
    const t0 = performance.now();
    m.start();
    let result;
    let gaps: GapReport;
    try {
      result = await Promise.race([
        m.wait(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`guest did not finish; NIC stats ${JSON.stringify(nic.stats)}; console:\n${m.console.output}`)), 240_000).unref()),
      ]);
    } finally {
      gaps = await monitor.stop();
    }
    const s = nic.stats;
    assert.equal(result.reason, 'debug-exit', m.console.output);
    assert.equal(result.code, (0x7e5 << 1) | 1);
    assert.match(m.console.output, /^phase1 errors=00000400$/m, 'all 1,024 MSS-1 descriptors refused with TxError');
    assert.match(m.console.output, /^phase2 errors=00000000$/m);
    assert.equal(s.txBadMss, 1024);
    assert.equal(s.txFrames, SEGMENTS);
    assert.ok(s.txDeferred >= 100, `the segments went out over many turns (${s.txDeferred} deferred)`);
    assert.ok(gaps.ticks > 0);
    return { gaps, seconds: (performance.now() - t0) / 1000, deferred: s.txDeferred };
  } finally {
    backend.close();
  }
}

test('a TxPoll over a ring of LargeSend descriptors at MSS 1 and 8 leaves the event loop free; the guest finishes', { timeout: 600_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-tso-flood.S', { linkAddress: 0x10000, format: 'flat' })));
  // What this process did with the time is measured as well as a loaded machine allows (CPU
  // wait and GC pauses taken out); a host that stalls the whole process (the nested lab's vCPU
  // descheduled by its host) still shows up as a gap. So a long gap gets two more runs: a
  // device that monopolises the thread does so every time (before this bound, the first TxPoll
  // kept it for minutes), a stall of the machine does not.
  const runs: Attempt[] = [];
  for (let i = 0; i < 3; i++) {
    const a = await attempt(kernel);
    runs.push(a);
    const g = a.gaps;
    t.diagnostic(`run ${i + 1}: guest finished in ${a.seconds.toFixed(1)} s; largest interval gap ${g.largestMs} ms raw, ${g.largestOwnMs} ms ` +
      `less CPU wait, GC pauses and process stalls (schedstat ${g.schedstat ? 'read' : 'unavailable'}; ${g.gcPauses} GC pauses, ${g.gcMs} ms; ` +
      `${g.stalls} stalls seen by the sentinel thread, ${g.stalledMs} ms), ${g.ticks} ticks; ` +
      `${SEGMENTS} segments in ${a.deferred + 1}+ turns, 1024 descriptors refused for MSS < 8`);
    t.diagnostic(`run ${i + 1}: longest gaps ${JSON.stringify(g.worst)}`);
    if (g.largestOwnMs < MAX_GAP_MS) break;
  }
  const best = Math.min(...runs.map((a) => a.gaps.largestOwnMs));
  assert.ok(best < MAX_GAP_MS, `the event loop was kept ${runs.map((a) => `${a.gaps.largestOwnMs} ms`).join(', ')} in ${runs.length} runs: ` +
    JSON.stringify(runs.map((a) => a.gaps.largestOwn)));
});
