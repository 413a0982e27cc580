// virtio-9p throughput and metadata cost, node-kvm against QEMU's virtio-9p (`-virtfs local,
// security_model=none`) with the same kernel, initramfs, memory, msize (512000, the most
// Linux's virtio transport takes) and cache=none, exporting the same host directory:
//   read   dd of a 64 MiB file to /dev/null, bs=512k      (MB/s)
//   write  dd of 64 MiB from /dev/zero into a new file     (MB/s)
//   stat   ls -lR of a tree of 2,000 files (a walk, getattr per file; wall seconds)
//   exec   `node-kvm exec -- true` against QEMU booting the same guest with the same 9p root
//          (ninep-exec.ts; wall seconds from start to the VMM's end)
// Each row runs `runs` times per VMM in one boot of each; times are the host's wall clock around
// the guest command (console round trip included, the same for both). Prints medians and the
// ratios ours/QEMU. On a host whose /dev/kvm cannot boot Linux the bench re-runs itself inside
// one nested-lab boot, where both VMMs run as L2 guests of the same emulated SVM.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { doctor, qemuVersion } from '../lib/doctor.js';
import { getDefaultImage, GUEST_PROMPT } from '../lib/images/index.js';
import { runInLab } from '../lib/lab/index.js';
import { DEFAULT_CMDLINE } from '../lib/machine/cmdline.js';
import { Machine } from '../lib/machine/index.js';
import { median } from './exit-roundtrip.js';
import { oursExecTrue, qemuExecTrue } from './ninep-exec.js';

export interface NinepBenchOptions {
  runs?: number;
  log?: (line: string) => void;
}

const MEMORY = '512M';
const MSIZE = 512000;
const FILE_MIB = 64;
const TREE_DIRS = 20;
const TREE_FILES = 100;
const TIMEOUT_MS = 600_000;

/** A guest shell on a serial console: run a command, get its output. */
interface GuestShell {
  run(cmd: string, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

/** Shell protocol over any console: the markers are split by quotes so the echo never matches. */
function shellOver(write: (s: string) => void, output: () => string, waitChange: () => Promise<void>): GuestShell['run'] {
  let seq = 0;
  return async (cmd, timeoutMs = TIMEOUT_MS) => {
    const id = ++seq;
    write(`echo '@@B''${id}@@'; ${cmd}; echo "@@E""${id}:$?@@"\n`);
    const re = new RegExp(`@@B${id}@@\\r?\\n([\\s\\S]*?)@@E${id}:(\\d+)@@`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(output());
      if (m !== null) {
        if (m[2] !== '0') throw new Error(`guest command failed (${m[2]}): ${cmd}\n${m[1]}`);
        return m[1]!.replace(/\r/g, '');
      }
      if (Date.now() > deadline) throw new Error(`guest command timed out: ${cmd}\n${output().slice(-2000)}`);
      await waitChange();
    }
  };
}

async function bootOurs(kernel: string, initrd: string, share: string): Promise<GuestShell> {
  const m = await Machine.create({
    kernel, initrd, cmdline: `${DEFAULT_CMDLINE} quiet`, memory: MEMORY, cpus: 1, shares: [{ path: share, tag: 'bench' }],
  });
  m.start();
  await m.console.waitFor(GUEST_PROMPT, { timeout: TIMEOUT_MS });
  const run = shellOver((s) => m.console.write(s), () => m.console.output,
    () => new Promise<void>((r) => {
      // Whichever comes first; the other is removed (a listener per poll would pile up).
      const done = (): void => { m.console.off('output', done); clearTimeout(timer); r(); };
      const timer = setTimeout(done, 200);
      m.console.once('output', done);
    }));
  return { run, close: () => m.close() };
}

async function bootQemu(kernel: string, initrd: string, share: string): Promise<GuestShell> {
  const child: ChildProcess = spawn('qemu-system-x86_64', [
    '-enable-kvm', '-cpu', 'host,-xsave', '-M', 'pc', '-m', MEMORY, '-smp', '1', '-nodefaults', '-no-user-config',
    '-display', 'none', '-no-reboot', '-serial', 'stdio', '-kernel', kernel, '-initrd', initrd,
    '-append', `${DEFAULT_CMDLINE} quiet`,
    '-virtfs', `local,path=${share},mount_tag=bench,security_model=none,id=fs0`,
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (d: Buffer) => { out += d.toString('latin1'); waiters.splice(0).forEach((w) => w()); });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const waitChange = (): Promise<void> => new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
  const deadline = Date.now() + TIMEOUT_MS;
  while (!out.includes(GUEST_PROMPT)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`qemu did not reach the shell: ${out.slice(-2000)}\n${err}`);
    await waitChange();
  }
  const run = shellOver((s) => child.stdin!.write(s), () => out, waitChange);
  return {
    run,
    async close() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

type Row = 'read' | 'write' | 'stat';

async function measure(sh: GuestShell, row: Row): Promise<number> {
  const t0 = performance.now();
  if (row === 'read') await sh.run(`dd if=/mnt/bench/big of=/dev/null bs=512k 2>/dev/null`);
  else if (row === 'write') await sh.run(`dd if=/dev/zero of=/mnt/bench/w bs=512k count=${FILE_MIB * 2} 2>/dev/null`);
  else await sh.run('ls -lR /mnt/bench/tree >/dev/null');
  const s = (performance.now() - t0) / 1000;
  if (row === 'write') await sh.run('rm /mnt/bench/w');
  return s;
}

export async function runNinepBench(opts: NinepBenchOptions = {}): Promise<void> {
  const runs = Math.max(3, opts.runs ?? 3);
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const inLab = process.env.NODE_KVM_LAB === '1';
  if (!inLab && !(await doctor()).canBootLinuxDirectly) {
    log('9p: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getDefaultImage({ build: true });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const r = await runInLab({ command: [process.execPath, index, '9p', `--runs=${runs}`], stdout: process.stdout, stderr: process.stderr });
    if (r.exitCode !== 0) throw new Error(`9p bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  const version = qemuVersion();
  if (version === undefined) throw new Error('qemu-system-x86_64 not found: the 9p bench compares against QEMU (apt-get install qemu-system-x86)');
  const img = await getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-9p-bench-'));
  try {
    const kernel = join(dir, 'vmlinux');
    const initrd = join(dir, 'initrd.cpio.gz');
    copyFileSync(img.vmlinux, kernel);
    copyFileSync(img.initrd, initrd);
    const share = join(dir, 'share');
    mkdirSync(share);
    writeFileSync(join(share, 'big'), randomBytes(FILE_MIB * 1024 * 1024));
    for (let d = 0; d < TREE_DIRS; d++) {
      mkdirSync(join(share, 'tree', `d${d}`), { recursive: true });
      for (let f = 0; f < TREE_FILES; f++) writeFileSync(join(share, 'tree', `d${d}`, `f${f}`), String(f));
    }
    log(`9p: ${FILE_MIB} MiB dd read/write (bs=512k) and ls -lR of ${TREE_DIRS * TREE_FILES} files, msize=${MSIZE}, cache=none, ` +
      `${MEMORY}, 1 vCPU, QEMU ${version} -virtfs security_model=none, ${inLab ? 'inside the nested lab' : 'on this host'}, ${runs} runs`);
    const rows: Row[] = ['read', 'write', 'stat'];
    const results = new Map<string, number[]>();
    for (const vmm of ['node-kvm', 'qemu'] as const) {
      const sh = vmm === 'node-kvm' ? await bootOurs(kernel, initrd, share) : await bootQemu(kernel, initrd, share);
      try {
        await sh.run(`mkdir -p /mnt/bench && mount -t 9p -o trans=virtio,version=9p2000.L,msize=${MSIZE},cache=none bench /mnt/bench`);
        for (let r = 0; r < runs; r++) {
          for (const row of rows) {
            const s = await measure(sh, row);
            const k = `${vmm} ${row}`;
            results.set(k, [...(results.get(k) ?? []), s]);
            log(`  run ${r + 1} ${k.padEnd(16)} ${s.toFixed(3)} s${row === 'stat' ? '' : `  ${(FILE_MIB * 1.048576 / s).toFixed(1)} MB/s`}`);
          }
        }
      } finally {
        await sh.close();
      }
    }
    // The exec row boots a guest per run, alternating VMMs so both see the same machine load.
    for (let r = 0; r < runs; r++) {
      for (const vmm of ['node-kvm', 'qemu'] as const) {
        const s = vmm === 'node-kvm' ? await oursExecTrue(kernel, initrd, MEMORY) : await qemuExecTrue(kernel, initrd, MEMORY);
        const k = `${vmm} exec`;
        results.set(k, [...(results.get(k) ?? []), s]);
        log(`  run ${r + 1} ${k.padEnd(16)} ${s.toFixed(3)} s`);
      }
    }
    log('  medians and ratios ours/QEMU (throughput: > 1 means node-kvm is faster; stat and exec time: < 1 means faster):');
    for (const row of [...rows, 'exec' as const]) {
      const ours = median(results.get(`node-kvm ${row}`) ?? []);
      const qemu = median(results.get(`qemu ${row}`) ?? []);
      if (row === 'stat' || row === 'exec') {
        log(`    ${row.padEnd(6)} node-kvm ${ours.toFixed(3)} s, QEMU ${qemu.toFixed(3)} s, ratio ${(ours / qemu).toFixed(3)}× (goal ≤ 1: ${ours <= qemu ? 'met' : 'NOT met'})`);
      } else {
        const mbO = FILE_MIB * 1.048576 / ours;
        const mbQ = FILE_MIB * 1.048576 / qemu;
        log(`    ${row.padEnd(6)} node-kvm ${mbO.toFixed(1)} MB/s, QEMU ${mbQ.toFixed(1)} MB/s, ratio ${(mbO / mbQ).toFixed(3)}× (goal ≥ 1: ${mbO >= mbQ ? 'met' : 'NOT met'})`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
