// Seeded fuzzing of the uart device (test/fuzz/devices/uart.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { uartTarget } from '../fuzz/devices/uart.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: uart', (t) => {
  fuzzTest(t, uartTarget);
});
