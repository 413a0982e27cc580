// `npm run bench [filter] [--runs=N] [--iterations=N] [--lab-cpus=N] [--warmup=N] [--tso-rtt-log=N] [--backend=tap|user]`: runs every benchmark whose name contains
// `filter` (all without one). Benchmarks print their own figures; nothing here asserts on time.
import { InvalidArgumentError } from '../lib/errors.js';
import { runExitRoundtrip } from './exit-roundtrip.js';
import { runNetBench } from './net.js';
import { runBootBench } from './boot.js';
import { kvmUnavailableReason } from '../test/helpers/kvm.js';

interface Bench {
  name: string;
  needsKvm: boolean;
  run: (opts: BenchOptions) => unknown;
}

interface BenchOptions {
  runs?: number;
  iterations?: number;
  /** CPUs of the nested lab, for benches that run inside one (default 1). */
  labCpus?: number;
  /** net: seconds of unmeasured transfer before the warm measurements (default 20). */
  warmup?: number;
  /** net: the guest's net.ipv4.tcp_tso_rtt_log for both VMMs (default: the kernel's, 9). */
  tsoRttLog?: number;
  /** net: 'tap' (default) or 'user' (passt, against QEMU's slirp and passt). */
  backend?: 'tap' | 'user';
}

const benches: Bench[] = [
  { name: 'exit-roundtrip', needsKvm: true, run: (o) => runExitRoundtrip(o) },
  { name: 'net', needsKvm: true, run: (o) => runNetBench(o) },
  { name: 'snapshot', needsKvm: true, run: async (o) => (await import('./snapshot.js')).runSnapshotBench(o) },
  { name: 'boot', needsKvm: true, run: (o) => runBootBench(o) },
  { name: 'exec', needsKvm: true, run: async (o) => (await import('./exec.js')).runExecBench(o) },
  { name: '9p', needsKvm: true, run: async (o) => (await import('./ninep.js')).runNinepBench(o) },
  { name: 'host-calls', needsKvm: true, run: async (o) => (await import('./host-calls.js')).runHostCallsBench(o) },
  { name: 'fork', needsKvm: true, run: async (o) => (await import('./fork.js')).runForkBench(o) },
  { name: 'rtl8139-model', needsKvm: false, run: async (o) => (await import('./rtl8139-model.js')).runRtl8139ModelBench(o) },
];

function parseArgs(argv: readonly string[]): { filter: string | undefined; opts: BenchOptions } {
  let filter: string | undefined;
  const opts: BenchOptions = {};
  for (const a of argv) {
    const m = /^--(runs|iterations|lab-cpus|warmup|tso-rtt-log)=(\d+)$/.exec(a);
    const key = { 'runs': 'runs', 'iterations': 'iterations', 'lab-cpus': 'labCpus', 'warmup': 'warmup', 'tso-rtt-log': 'tsoRttLog' } as const;
    const b = /^--backend=(.*)$/.exec(a);
    if (m !== null) opts[key[m[1] as keyof typeof key]] = Number(m[2]);
    else if (b !== null) {
      if (b[1] !== 'tap' && b[1] !== 'user') throw new InvalidArgumentError(`--backend must be tap or user (got ${b[1]})`);
      opts.backend = b[1];
    } else if (a.startsWith('--')) throw new InvalidArgumentError(`unknown option ${a} (known: --runs=N, --iterations=N, --lab-cpus=N, --warmup=N, --tso-rtt-log=N, --backend=tap|user)`);
    else filter = a;
  }
  return { filter, opts };
}

async function main(): Promise<void> {
  const { filter, opts } = parseArgs(process.argv.slice(2));
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
    await b.run(opts);
    process.stdout.write(`${b.name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n\n`);
  }
}

await main();
