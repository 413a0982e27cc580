// Seeded fuzzing of the i8042 device (test/fuzz/devices/i8042.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { i8042Target } from '../fuzz/devices/i8042.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: i8042', (t) => {
  fuzzTest(t, i8042Target);
});
