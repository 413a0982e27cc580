// Seeded fuzzing of the acpi-pm device (test/fuzz/devices/acpi-pm.ts); NODE_KVM_FUZZ_SEED / _OPS replay or extend it.
import { test } from 'node:test';
import { acpiPmTarget } from '../fuzz/devices/acpi-pm.js';
import { fuzzTest } from '../fuzz/run-test.js';

test('fuzz: acpi-pm', (t) => {
  fuzzTest(t, acpiPmTarget);
});
