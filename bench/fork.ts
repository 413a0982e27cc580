// Forks vs boots, for the default image (vmlinux + busybox initramfs, 256M, no NIC), same run:
//   first exec   bootVm() → first exec() answer, vs tpl.fork() → first exec() answer
//   20 tests     20 tests of one exec() each: bootVm + exec + close each, vs vmTemplate once +
//                fork + exec + close each (end to end, the template's boot included)
// Prints medians and the ratios (goals: fork >= 20x faster than boot, the 20 tests >= 10x). On a
// host whose /dev/kvm cannot boot Linux (kvm_pvm) it re-runs itself inside one nested-lab boot.
import { fileURLToPath } from 'node:url';
import { doctor } from '../lib/doctor.js';
import { getDefaultImage } from '../lib/images/index.js';
import { runInLab } from '../lib/lab/index.js';
import { vmTemplate } from '../lib/testing/template.js';
import { bootVm } from '../lib/testing/vm.js';
import { median } from './exit-roundtrip.js';

/** Options of the fork bench. */
export interface ForkBenchOptions {
  /** Boots and forks timed for the first-exec figure (default 3). */
  runs?: number;
  /** Tests in the "file of tests" figure (default 20). */
  iterations?: number;
  log?: (line: string) => void;
}

const MEMORY = '256M';
const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

export async function runForkBench(opts: ForkBenchOptions = {}): Promise<void> {
  const runs = opts.runs ?? 3;
  const tests = opts.iterations ?? 20;
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const inLab = process.env.NODE_KVM_LAB === '1';
  if (!inLab && !(await doctor()).canBootLinuxDirectly) {
    log('fork: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getDefaultImage({ build: true });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const r = await runInLab({
      command: [process.execPath, index, 'fork', `--runs=${runs}`, `--iterations=${tests}`], stdout: process.stdout, stderr: process.stderr,
      env: { NODE_KVM_TRACE_SNAPSHOT: process.env.NODE_KVM_TRACE_SNAPSHOT },
    });
    if (r.exitCode !== 0) throw new Error(`fork bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  await getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });

  // First exec: boot vs fork, interleaved so both see the same machine load.
  let t = performance.now();
  await using tpl = await vmTemplate({ name: 'bench', memory: MEMORY });
  const templateMs = performance.now() - t;
  const boot: number[] = [];
  const fork: number[] = [];
  const forkCall: number[] = [];
  const warmExec: number[] = [];
  for (let run = 0; run < runs; run++) {
    t = performance.now();
    {
      await using vm = await bootVm({ memory: MEMORY });
      await vm.execOk('true');
      boot.push(performance.now() - t);
    }
    t = performance.now();
    {
      await using vm = await tpl.fork();
      forkCall.push(performance.now() - t);
      await vm.execOk('true');
      fork.push(performance.now() - t);
      // What an exec costs once the fork's pages are in: the part of the above that is not the fork.
      const w = performance.now();
      await vm.execOk('true');
      warmExec.push(performance.now() - w);
    }
    log(`run ${run + 1}/${runs}: bootVm to first exec ${fmt(boot[run]!)}, fork to first exec ${fmt(fork[run]!)} `
      + `(fork() ${fmt(forkCall[run]!)}; a second exec ${fmt(warmExec[run]!)})`);
  }

  // A file of one-exec tests, each in its own VM.
  t = performance.now();
  for (let i = 0; i < tests; i++) {
    await using vm = await bootVm({ memory: MEMORY });
    await vm.execOk(`echo test ${i}`);
  }
  const bootedFile = performance.now() - t;
  log(`${tests} tests, booted: ${fmt(bootedFile)}`);
  t = performance.now();
  {
    await using fileTpl = await vmTemplate({ name: 'file', memory: MEMORY });
    for (let i = 0; i < tests; i++) {
      await using vm = await fileTpl.fork();
      await vm.execOk(`echo test ${i}`);
    }
  }
  const forkedFile = performance.now() - t;
  log(`${tests} tests, forked (template boot included): ${fmt(forkedFile)}`);

  const b = median(boot);
  const f = median(fork);
  log(`fork bench (${inLab ? 'inside the nested lab' : 'host KVM'}, ${MEMORY}, ${runs} run(s), medians):`);
  log(`  bootVm() to first exec answer     ${fmt(b)}`);
  log(`  tpl.fork() to first exec answer   ${fmt(f)}   boot/fork ${(b / f).toFixed(1)}x (goal >= 20x)`);
  log(`    of which fork() (restore + the guest's clock/MAC set-up exec) ${fmt(median(forkCall))}; one warm exec ${fmt(median(warmExec))}`);
  log(`  vmTemplate() with empty setup     ${fmt(templateMs)}`);
  log(`  ${tests} one-exec tests, booted     ${fmt(bootedFile)}`);
  log(`  ${tests} one-exec tests, forked     ${fmt(forkedFile)}   booted/forked ${(bootedFile / forkedFile).toFixed(1)}x (goal >= 10x)`);
}
