// The body of every test/unit/fuzz-*.test.ts: run one target under the environment's seed and
// operation count, and print what it did (the seed included, so any run can be replayed).
import type { TestContext } from 'node:test';
import { formatReport, fuzzConfig, runFuzz, type FuzzReport, type FuzzTarget } from './harness.js';

export function fuzzTest(t: TestContext, target: FuzzTarget): FuzzReport {
  const report = runFuzz(target, fuzzConfig());
  t.diagnostic(formatReport(report));
  return report;
}
