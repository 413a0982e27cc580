// Seeded fuzzing of the RTL8139 (test/fuzz/devices/rtl8139.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { rtl8139CplusTarget } from '../fuzz/devices/rtl8139.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: rtl8139-cplus', (t) => {
  fuzzTest(t, rtl8139CplusTarget);
});
