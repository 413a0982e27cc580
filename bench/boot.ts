// Boot time: from Machine.create to the guest's readiness line (NODE-KVM-READY), for the
// default image's bzImage and vmlinux, against QEMU with KVM (`-M pc` and `-M microvm`) booting
// the same kernel, initrd, memory and command line on the same host, in alternating order.
// Prints per-run figures, medians and the ratios ours/QEMU. On a host whose /dev/kvm cannot
// boot Linux (kvm_pvm) the whole bench re-runs itself inside ONE boot of the nested lab.
//
// Also printed, to see where the time goes: time to the first console byte (host-side setup
// and loading, until the kernel's first printk), the guest kernel's own clock at its last
// message before READY, exit counts, a per-port breakdown of one extra boot, and the same
// boots with `quiet` (console output cost).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { doctor, qemuVersion } from '../lib/doctor.js';
import { getDefaultImage, READY_MARKER } from '../lib/images/index.js';
import { runInLab } from '../lib/lab/index.js';
import { DEFAULT_CMDLINE } from '../lib/machine/cmdline.js';
import { Machine } from '../lib/machine/index.js';
import { median } from './exit-roundtrip.js';

export interface BootBenchOptions {
  runs?: number;
  log?: (line: string) => void;
}

type Kind = 'bzImage' | 'vmlinux';
type Vmm = 'node-kvm' | 'qemu-pc' | 'qemu-microvm';

interface Config {
  vmm: Vmm;
  kind: Kind;
  quiet: boolean;
}

interface Sample {
  /** Create/spawn → first console byte (ms). */
  firstByteMs: number;
  /** Create/spawn → READY line (ms). */
  readyMs: number;
  /** The guest kernel's timestamp on its last printk line before READY (s), when not quiet. */
  guestClockS: number | undefined;
  exits?: { io: number; mmio: number; other: number };
}

const MEMORY = '256M';
const READY_TIMEOUT_MS = 240_000;
const label = (c: Config): string => `${c.vmm} ${c.kind}${c.quiet ? ' quiet' : ''}`;

function lastPrintkSeconds(text: string): number | undefined {
  let last: number | undefined;
  for (const m of text.matchAll(/^\[\s*(\d+\.\d+)\]/gm)) last = Number(m[1]);
  return last;
}

async function bootOurs(kernel: string, initrd: string, cmdline: string): Promise<Sample> {
  const t0 = performance.now();
  const m = await Machine.create({ kernel, initrd, cmdline, memory: MEMORY, cpus: 1 });
  try {
    let firstByteMs = -1;
    m.console.once('output', () => (firstByteMs = performance.now() - t0));
    m.start();
    await m.console.waitFor(READY_MARKER, { timeout: READY_TIMEOUT_MS });
    const readyMs = performance.now() - t0;
    const text = m.console.output;
    const { io, mmio, other } = m.counters;
    return { firstByteMs, readyMs, guestClockS: lastPrintkSeconds(text.slice(0, text.indexOf(READY_MARKER))), exits: { io, mmio, other } };
  } finally {
    await m.close();
  }
}

function qemuArgs(machine: 'pc' | 'microvm', kernel: string, initrd: string, cmdline: string): string[] {
  return [
    '-enable-kvm', '-cpu', 'host,-xsave',
    '-M', machine === 'pc' ? 'pc' : 'microvm,x-option-roms=off,rtc=on',
    '-m', MEMORY, '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', 'stdio', '-kernel', kernel, '-initrd', initrd, '-append', cmdline,
  ];
}

function bootQemu(machine: 'pc' | 'microvm', kernel: string, initrd: string, cmdline: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('qemu-system-x86_64', qemuArgs(machine, kernel, initrd, cmdline), { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let firstByteMs = -1;
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      f();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`qemu -M ${machine}: no ${READY_MARKER} within ${READY_TIMEOUT_MS} ms:\n${out.slice(-2000)}\n${err}`))), READY_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - t0;
      out += d.toString('latin1');
      const at = out.indexOf(READY_MARKER);
      if (at >= 0) {
        const readyMs = performance.now() - t0;
        finish(() => resolve({ firstByteMs, readyMs, guestClockS: lastPrintkSeconds(out.slice(0, at)) }));
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => finish(() => reject(e)));
    child.on('close', (code) => finish(() => reject(new Error(`qemu -M ${machine} exited (${code}) before ${READY_MARKER}:\n${out.slice(-2000)}\n${err}`))));
  });
}

/** One diagnostic boot of ours with every port exit counted, to READY. */
async function exitsByPort(kernel: string, initrd: string, cmdline: string): Promise<Array<[string, number]>> {
  const m = await Machine.create({ kernel, initrd, cmdline, memory: MEMORY, cpus: 1 });
  try {
    const counts = new Map<string, number>();
    const pio = m.platform.pio;
    const handle = pio.handleIo.bind(pio);
    pio.handleIo = (e): void => {
      const key = `0x${e.port.toString(16)} ${e.direction}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      handle(e);
    };
    m.start();
    await m.console.waitFor(READY_MARKER, { timeout: READY_TIMEOUT_MS });
    const c = m.counters;
    counts.set('(mmio exits)', c.mmio);
    counts.set('(hlt/interrupted/other exits)', c.other);
    return [...counts].sort((a, b) => b[1] - a[1]);
  } finally {
    await m.close();
  }
}

export async function runBootBench(opts: BootBenchOptions = {}): Promise<void> {
  const runs = Math.max(3, opts.runs ?? 3);
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const inLab = process.env.NODE_KVM_LAB === '1';
  if (!inLab && !(await doctor()).canBootLinuxDirectly) {
    log('boot: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getDefaultImage({ build: true });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const r = await runInLab({ command: [process.execPath, index, 'boot', `--runs=${runs}`], stdout: process.stdout, stderr: process.stderr });
    if (r.exitCode !== 0) throw new Error(`boot bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  const version = qemuVersion();
  if (version === undefined) throw new Error('qemu-system-x86_64 not found: the boot bench compares against QEMU (apt-get install qemu-system-x86)');
  const img = await getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });
  // Copy the images to local storage (RAM inside the lab) so neither side reads them over 9p.
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-boot-bench-'));
  try {
    const files = { bzImage: join(dir, 'bzImage'), vmlinux: join(dir, 'vmlinux'), initrd: join(dir, 'initrd.cpio.gz') };
    copyFileSync(img.kernel, files.bzImage);
    copyFileSync(img.vmlinux, files.vmlinux);
    copyFileSync(img.initrd, files.initrd);
    const cmdline = (quiet: boolean): string => (quiet ? `${DEFAULT_CMDLINE} quiet` : DEFAULT_CMDLINE);
    const boot = (c: Config): Promise<Sample> => (c.vmm === 'node-kvm'
      ? bootOurs(files[c.kind], files.initrd, cmdline(c.quiet))
      : bootQemu(c.vmm === 'qemu-pc' ? 'pc' : 'microvm', files[c.kind], files.initrd, cmdline(c.quiet)));

    const configs: Config[] = [];
    for (const kind of ['bzImage', 'vmlinux'] as const) {
      for (const vmm of ['node-kvm', 'qemu-pc', 'qemu-microvm'] as const) configs.push({ vmm, kind, quiet: false });
    }
    configs.push({ vmm: 'node-kvm', kind: 'vmlinux', quiet: true }, { vmm: 'qemu-microvm', kind: 'vmlinux', quiet: true });

    log(`boot: Machine.create / spawn → "${READY_MARKER}", ${MEMORY}, 1 vCPU, QEMU ${version} (-enable-kvm -cpu host,-xsave), ` +
      `${inLab ? 'inside the nested lab (L2 guests on kvm_amd, emulated SVM under TCG)' : 'on this host'}, ${runs} runs per config, rotating order`);
    log(`  cmdline: ${DEFAULT_CMDLINE} (quiet rows add "quiet"); kernel ${img.manifest.kernel.release}`);
    const samples = new Map<string, Sample[]>(configs.map((c) => [label(c), []]));
    for (let r = 0; r < runs; r++) {
      const order = configs.map((_, i) => configs[(i + r) % configs.length]!);
      for (const c of order) {
        let s: Sample;
        try {
          s = await boot(c);
        } catch (e) {
          // One failed boot must not lose the others' figures: report it and go on.
          log(`  run ${r + 1} ${label(c).padEnd(26)} FAILED: ${(e as Error).message.slice(0, 1500)}`);
          continue;
        }
        samples.get(label(c))!.push(s);
        const ex = s.exits ? `  exits io ${s.exits.io} mmio ${s.exits.mmio} other ${s.exits.other}` : '';
        const gc = s.guestClockS !== undefined ? `  guest clock ${s.guestClockS.toFixed(2)} s` : '';
        log(`  run ${r + 1} ${label(c).padEnd(26)} ready ${(s.readyMs / 1000).toFixed(2)} s  first byte ${(s.firstByteMs / 1000).toFixed(2)} s${gc}${ex}`);
      }
    }

    const med = (c: Config, f: (s: Sample) => number): number => {
      const xs = samples.get(label(c))!;
      return xs.length === 0 ? Number.NaN : median(xs.map(f));
    };
    const find = (vmm: Vmm, kind: Kind, quiet = false): Config => configs.find((c) => c.vmm === vmm && c.kind === kind && c.quiet === quiet)!;
    log('  medians (s): ready / first byte / guest clock at last printk');
    for (const c of configs) {
      const gc = c.quiet ? '-' : med(c, (s) => s.guestClockS ?? Number.NaN).toFixed(2);
      log(`    ${label(c).padEnd(26)} ${(med(c, (s) => s.readyMs) / 1000).toFixed(2)} / ${(med(c, (s) => s.firstByteMs) / 1000).toFixed(2)} / ${gc}`);
    }
    log('  ratios ours/QEMU (time to READY, medians; < 1 means node-kvm is faster):');
    for (const kind of ['bzImage', 'vmlinux'] as const) {
      const ours = med(find('node-kvm', kind), (s) => s.readyMs);
      const pc = ours / med(find('qemu-pc', kind), (s) => s.readyMs);
      const micro = ours / med(find('qemu-microvm', kind), (s) => s.readyMs);
      log(`    ${kind.padEnd(8)} vs -M pc ${pc.toFixed(3)}× (goal < 1: ${pc < 1 ? 'met' : 'NOT met'})   ` +
        `vs -M microvm ${micro.toFixed(3)}× (goal ≤ 1: ${micro <= 1 ? 'met' : 'NOT met'})`);
    }
    const quietOurs = med(find('node-kvm', 'vmlinux', true), (s) => s.readyMs) / med(find('node-kvm', 'vmlinux'), (s) => s.readyMs);
    const quietMicro = med(find('qemu-microvm', 'vmlinux', true), (s) => s.readyMs) / med(find('qemu-microvm', 'vmlinux'), (s) => s.readyMs);
    log(`    quiet/verbose (vmlinux): node-kvm ${quietOurs.toFixed(3)}×, qemu-microvm ${quietMicro.toFixed(3)}×; ` +
      `quiet ours/microvm ${(med(find('node-kvm', 'vmlinux', true), (s) => s.readyMs) / med(find('qemu-microvm', 'vmlinux', true), (s) => s.readyMs)).toFixed(3)}×`);

    const byPort = await exitsByPort(files.vmlinux, files.initrd, cmdline(false));
    log(`  node-kvm exits to READY by port (one verbose vmlinux boot, ${basename(files.vmlinux)}): ` +
      byPort.slice(0, 12).map(([k, n]) => `${k}: ${n}`).join(', '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
