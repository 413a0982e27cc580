// Seeded fuzzing of the debug-exit device (test/fuzz/devices/debug-exit.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { debugExitTarget } from '../fuzz/devices/debug-exit.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: debug-exit', (t) => {
  fuzzTest(t, debugExitTarget);
});
