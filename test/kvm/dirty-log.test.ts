// KVM_GET_DIRTY_LOG reports exactly the pages the guest wrote (the dirty guest writes one byte
// to each address we hand it, in protected mode, touching nothing else).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { PORT } from '../guests/build.js';
import { attach, createGuestVm, Recorder, runSync } from '../guests/run.js';

function pagesOf(bitmap: Uint8Array): number[] {
  const pages: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if ((bitmap[i >> 3]! >> (i & 7)) & 1) pages.push(i);
  return pages;
}

test('dirty log: exactly the guest-written pages, and reading it clears it', (t) => {
  if (!requireKvm(t)) return;
  const ram = 0x100000; // 256 pages
  using g = createGuestVm({ guest: 'dirty', ramSize: ram, logDirtyPages: true });
  const report = new Recorder();
  const targets = [0x20000, 0x20fff, 0x33004, 0x7a000, 0xff000 + 17];
  const param = new Recorder().feed(...targets, 0xffff_ffff);
  attach(g, 'REPORT', report);
  attach(g, 'PARAM', param);

  // Phase 1: up to the first report (in protected mode); whatever got dirty is cleared by reading.
  runSync(g, (e) => e.reason === 'io' && e.port === PORT.REPORT);
  assert.deepEqual(report.values(), [1]);
  const first = g.vm.getDirtyLog(g.slot);
  assert.equal(first.length, ram / 4096 / 8);
  assert.deepEqual(pagesOf(g.vm.getDirtyLog(g.slot)), [], 'a second read is clean');

  // Phase 2: the writes.
  assert.equal(runSync(g).reason, 'hlt');
  assert.deepEqual(report.values(), [1, 2]);
  const expected = [...new Set(targets.map((a) => Math.floor(a / 4096)))].sort((a, b) => a - b);
  assert.deepEqual(pagesOf(g.vm.getDirtyLog(g.slot)), expected);
  for (const a of targets) assert.equal(g.ram[a], 0xa5);
  assert.deepEqual(pagesOf(g.vm.getDirtyLog(g.slot)), []);
});
