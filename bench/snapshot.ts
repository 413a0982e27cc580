// Snapshot/restore vs cold boot, for the default image (vmlinux + busybox initramfs, 256M):
//   cold     Machine.create → shell answers a command
//   restore  machine.restore(in-memory snapshot) → shell answers a command (RAM copied back)
//   clone    loadSnapshot(file) + Machine.fromSnapshot → shell answers (RAM mapped copy-on-write),
//            with the file's RAM checksums skipped ('state') and checked ('full')
// plus the cost of taking and saving the snapshot. Prints medians and the ratio cold/restore
// (goal: >= 20x). On a host whose /dev/kvm cannot boot Linux (kvm_pvm) it re-runs itself inside
// one boot of the nested lab.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { doctor } from '../lib/doctor.js';
import { getDefaultImage, GUEST_PROMPT, READY_MARKER } from '../lib/images/index.js';
import { runInLab } from '../lib/lab/index.js';
import { DEFAULT_CMDLINE } from '../lib/machine/cmdline.js';
import { Machine } from '../lib/machine/index.js';
import { loadSnapshot } from '../lib/machine/snapshot.js';
import { flushSnapshotTrace, snapshotTrace, snapshotTraceEnabled } from '../lib/snapshot-trace.js';
import { median } from './exit-roundtrip.js';

export interface SnapshotBenchOptions {
  runs?: number;
  log?: (line: string) => void;
}

const MEMORY = '256M';
const TIMEOUT_MS = 240_000;
let sequence = 0;

/** Type a sum into the shell and wait for its answer and the next prompt. */
async function shellAnswers(m: Machine, label?: string): Promise<void> {
  const a = 1000 + ++sequence;
  const trace = label !== undefined && snapshotTraceEnabled();
  const t0 = performance.now();
  let first = -1;
  const onOutput = (): void => { if (first < 0) first = performance.now() - t0; };
  if (trace) m.console.on('output', onOutput);
  m.console.write(`echo $((${a}+1))\n`);
  await m.console.waitFor(new RegExp(`\\n${a + 1}\\r?\\n`), { timeout: TIMEOUT_MS });
  const answer = performance.now() - t0;
  await m.console.waitFor(GUEST_PROMPT, { timeout: TIMEOUT_MS });
  if (!trace) return;
  m.console.off('output', onOutput);
  snapshotTrace(`${label} shell: first echo ${first.toFixed(1)} ms, answer ${answer.toFixed(1)} ms, prompt ${(performance.now() - t0).toFixed(1)} ms; ${m.counters.io} io exits so far`);
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

export async function runSnapshotBench(opts: SnapshotBenchOptions = {}): Promise<void> {
  const runs = opts.runs ?? 3;
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const inLab = process.env.NODE_KVM_LAB === '1';
  if (!inLab && !(await doctor()).canBootLinuxDirectly) {
    log('snapshot: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getDefaultImage({ build: true });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const r = await runInLab({
      command: [process.execPath, index, 'snapshot', `--runs=${runs}`], stdout: process.stdout, stderr: process.stderr,
      env: { NODE_KVM_TRACE_SNAPSHOT: process.env.NODE_KVM_TRACE_SNAPSHOT },
    });
    if (r.exitCode !== 0) throw new Error(`snapshot bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  const img = await getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-snapshot-bench-'));
  const cold: number[] = [];
  const restore: number[] = [];
  const cloneState: number[] = [];
  const cloneFull: number[] = [];
  const take: number[] = [];
  const save: number[] = [];
  let fileBytes = 0;
  try {
    for (let run = 0; run < runs; run++) {
      const t0 = performance.now();
      await using m = await Machine.create({ kernel: img.vmlinux, initrd: img.initrd, cmdline: `${DEFAULT_CMDLINE} quiet`, memory: MEMORY, cpus: 1 });
      m.start();
      await m.console.waitFor(READY_MARKER, { timeout: TIMEOUT_MS });
      await m.console.waitFor(GUEST_PROMPT, { timeout: TIMEOUT_MS });
      await shellAnswers(m, 'cold');
      cold.push(performance.now() - t0);

      let t = performance.now();
      const snap = await m.snapshot();
      take.push(performance.now() - t);
      const path = join(dir, `shell-${run}.nkvm`);
      t = performance.now();
      snap.save(path);
      save.push(performance.now() - t);
      fileBytes = statSync(path).size;

      await shellAnswers(m); // the guest moves on
      t = performance.now();
      await m.restore(snap);
      const restored = performance.now() - t;
      await shellAnswers(m, `restore (restore() ${restored.toFixed(1)} ms)`);
      restore.push(performance.now() - t);
      snap.close();
      await m.stop();

      for (const [verify, into] of [['state', cloneState], ['full', cloneFull]] as const) {
        t = performance.now();
        const loaded = loadSnapshot(path, { verify });
        const tLoad = performance.now() - t;
        await using clone = await Machine.fromSnapshot(loaded);
        const tClone = performance.now() - t - tLoad;
        clone.start();
        await shellAnswers(clone, `clone-${verify} (load ${tLoad.toFixed(1)} ms, fromSnapshot ${tClone.toFixed(1)} ms)`);
        into.push(performance.now() - t);
        await clone.stop();
        loaded.close();
      }
      rmSync(path, { force: true });
      flushSnapshotTrace();
      log(`run ${run + 1}/${runs}: cold ${fmt(cold[run]!)}, restore ${fmt(restore[run]!)}, clone ${fmt(cloneState[run]!)} (state verify) / ${fmt(cloneFull[run]!)} (full verify), snapshot ${fmt(take[run]!)}, save ${fmt(save[run]!)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const c = median(cold);
  log(`snapshot bench (${inLab ? 'inside the nested lab' : 'host KVM'}, ${MEMORY}, ${runs} run(s), medians):`);
  log(`  cold boot to a shell answer      ${fmt(c)}`);
  log(`  restore (in-memory) to answer    ${fmt(median(restore))}   cold/restore ${(c / median(restore)).toFixed(1)}x (goal >= 20x)`);
  log(`  clone from file, state verify    ${fmt(median(cloneState))}   cold/clone ${(c / median(cloneState)).toFixed(1)}x`);
  log(`  clone from file, full verify     ${fmt(median(cloneFull))}   cold/clone ${(c / median(cloneFull)).toFixed(1)}x`);
  log(`  take snapshot ${fmt(median(take))}, save ${fmt(median(save))} (${(fileBytes / 1048576).toFixed(0)} MiB file)`);
}
