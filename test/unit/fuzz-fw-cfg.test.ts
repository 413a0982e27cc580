// Seeded fuzzing of the fw-cfg device (test/fuzz/devices/fw-cfg.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { fwCfgTarget } from '../fuzz/devices/fw-cfg.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: fw-cfg', (t) => {
  fuzzTest(t, fwCfgTarget);
});
