// Seeded fuzzing of the RTL8139's normal-mode receive ring against a model of 8139too's reader
// (test/fuzz/devices/rtl8139-rx.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { rtl8139RxTarget } from '../fuzz/devices/rtl8139-rx.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: rtl8139-rx', (t) => {
  fuzzTest(t, rtl8139RxTarget);
});
