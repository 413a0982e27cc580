// Seeded fuzzing of the cmos device (test/fuzz/devices/cmos.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { cmosTarget } from '../fuzz/devices/cmos.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: cmos', (t) => {
  fuzzTest(t, cmosTarget);
});
