// Shared gate for tests that need /dev/kvm: in CI (CI=true) a missing or unusable /dev/kvm is a
// test FAILURE; elsewhere the test is skipped with a loud reason on stderr.
import { accessSync, constants } from 'node:fs';
import type { TestContext } from 'node:test';

export function kvmUnavailableReason(path = '/dev/kvm'): string | undefined {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return undefined;
  } catch (e) {
    return `${path} not usable (${(e as NodeJS.ErrnoException).code}): add yourself to group kvm or modprobe kvm_intel/kvm_amd`;
  }
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/** Call first in a KVM test; returns false when the test was skipped (outside CI). */
export function requireKvm(t: TestContext): boolean {
  const why = kvmUnavailableReason();
  if (why === undefined) return true;
  if (inCI) throw new Error(`CI requires /dev/kvm: ${why}`);
  process.stderr.write(`\n*** SKIPPING KVM TEST "${t.name}": ${why} ***\n`);
  t.skip(why);
  return false;
}
