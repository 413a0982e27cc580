// Seeded fuzzing of the RTL8139C+ descriptor rings against a model of 8139cp
// (test/fuzz/devices/rtl8139-cplus-data.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { rtl8139CplusDataTarget } from '../fuzz/devices/rtl8139-cplus-data.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: rtl8139-cplus-data', (t) => {
  fuzzTest(t, rtl8139CplusDataTarget);
});
