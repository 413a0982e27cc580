// Seeded fuzzing of the machine's buses with the PCI host bridge in front
// (test/fuzz/devices/platform.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { platformTarget } from '../fuzz/devices/platform.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: platform-pci', (t) => {
  fuzzTest(t, platformTarget);
});
