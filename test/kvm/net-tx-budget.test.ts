// One guest write must not keep the main thread (vCPU 0, the event loop, every other VM of the
// process) for long. test/guests/plat-tso-flood.S queues 1,024 LargeSend descriptors of 64 KiB
// at MSS 1 and writes TxPoll once (the RTL8139C+ refuses MSS 1), then 16 at MSS 8 (130,976
// segments cut here) started by 4,096 TxPoll writes in one `rep outsb`, and waits for the
// descriptors in RAM without exiting. A setInterval(…, 10) runs all along: the time between its
// ticks, less any time the kernel left this thread waiting for a CPU or GC paused it (see
// test/helpers/gap-monitor.ts), stays under 50 ms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { GapMonitor, type GapReport } from '../helpers/gap-monitor.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { NullBackend } from '../../lib/net/backend.js';
import { PCI_IO_START } from '../../lib/boot/layout.js';

/** What the guest's frame makes at MSS 8: a 65,481-byte payload in 8-byte segments, 16 times. */
const SEGMENTS = 16 * Math.ceil((0xffff - 54) / 8);
const MAX_GAP_MS = 50;

test('a TxPoll over a ring of LargeSend descriptors at MSS 1 and 8 leaves the event loop free; the guest finishes', { timeout: 300_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-tso-flood.S', { linkAddress: 0x10000, format: 'flat' })));
  const backend = new NullBackend();
  t.after(() => backend.close());
  await using m = await Machine.create({ kernel, memory: '32M', net: [{ backend }], flat: { mode: 'protected' } });
  const nic = m.platform.nics[0]!;
  assert.equal(nic.barAddress(0), PCI_IO_START, 'the guest drives the NIC at NIC_IO = PCI_IO_START');
  const monitor = new GapMonitor(10, () => `${nic.stats.txFrames} segments, ${m.counters.io} PIO exits`);
  const t0 = performance.now();
  m.start();
  let result;
  let report: GapReport | undefined;
  try {
    result = await Promise.race([
      m.wait(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`guest did not finish; NIC stats ${JSON.stringify(nic.stats)}; console:\n${m.console.output}`)), 240_000).unref()),
    ]);
  } finally {
    report = await monitor.stop();
  }
  const gaps = report;
  const seconds = (performance.now() - t0) / 1000;
  const s = nic.stats;
  t.diagnostic(`guest finished in ${seconds.toFixed(1)} s; largest interval gap ${gaps.largestMs} ms raw, ${gaps.largestOwnMs} ms less CPU wait ` +
    `and GC pauses (schedstat ${gaps.schedstat ? 'read' : 'unavailable'}; ${gaps.gcPauses} GC pauses, ${gaps.gcMs} ms), ${gaps.ticks} ticks; ` +
    `${s.txFrames} segments in ${s.txDeferred + 1}+ turns, ${s.txBadMss} descriptors refused for MSS < 8`);
  t.diagnostic(`longest gaps: ${JSON.stringify(gaps.worst)}`);
  assert.equal(result.reason, 'debug-exit', m.console.output);
  assert.equal(result.code, (0x7e5 << 1) | 1);
  assert.match(m.console.output, /^phase1 errors=00000400$/m, 'all 1,024 MSS-1 descriptors refused with TxError');
  assert.match(m.console.output, /^phase2 errors=00000000$/m);
  assert.equal(s.txBadMss, 1024);
  assert.equal(s.txFrames, SEGMENTS);
  assert.ok(s.txDeferred >= 100, `the segments went out over many turns (${s.txDeferred} deferred)`);
  assert.ok(gaps.ticks > 0);
  assert.ok(gaps.largestOwnMs < MAX_GAP_MS, `the event loop was kept ${gaps.largestOwnMs} ms: ${JSON.stringify(gaps.largestOwn)}`);
});
