// `npm run bench [filter]`: runs every benchmark whose name contains `filter` (all without one).
// Benchmarks print their own figures; nothing here asserts on time.
import { runExitRoundtrip } from './exit-roundtrip.js';
import { kvmUnavailableReason } from '../test/helpers/kvm.js';

interface Bench {
  name: string;
  needsKvm: boolean;
  run: () => unknown;
}

const benches: Bench[] = [
  { name: 'exit-roundtrip', needsKvm: true, run: () => runExitRoundtrip() },
];

async function main(): Promise<void> {
  const filter = process.argv[2];
  const chosen = benches.filter((b) => filter === undefined || b.name.includes(filter));
  if (chosen.length === 0) {
    process.stderr.write(`no benchmark matches "${filter}"; available: ${benches.map((b) => b.name).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  for (const b of chosen) {
    const why = b.needsKvm ? kvmUnavailableReason() : undefined;
    if (why !== undefined) {
      process.stdout.write(`${b.name}: skipped, ${why}\n`);
      continue;
    }
    const t0 = performance.now();
    await b.run();
    process.stdout.write(`${b.name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n\n`);
  }
}

await main();
