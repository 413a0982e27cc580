// `npm run bench -- exec`: the testing API's round trip (`exec('true')`) and file throughput
// (writeFile/readFile of 16 MiB, sha256-checked) over the guest agent's virtio-console port,
// against the same calls over today's serial-console protocol (our VMM, same guest), and
// against QEMU (-enable-kvm -M pc) running the same kernel, initrd and agent with
// `-device virtio-serial-pci -device virtserialport,name=org.nodekvm.agent.0`, its port on a
// UNIX socket driven by the same AgentClient. Medians; ratios printed. On a host whose
// /dev/kvm cannot boot Linux the whole bench re-runs itself inside one nested-lab boot.
//
// The console path moves ~1-2 KiB/s in the lab, so its file figures come from a smaller file
// (CONSOLE_FILE_BYTES) and are compared as throughput.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { doctor, qemuVersion } from '../lib/doctor.js';
import { getDefaultImage, type Image } from '../lib/images/index.js';
import { runInLab } from '../lib/lab/index.js';
import { DEFAULT_CMDLINE } from '../lib/machine/cmdline.js';
import { AgentClient } from '../lib/testing/agent-client.js';
import { AGENT_PORT_NAME } from '../lib/testing/agent-protocol.js';
import { bootVm, type TestVm } from '../lib/testing/index.js';
import { median } from './exit-roundtrip.js';

export interface ExecBenchOptions {
  /** exec('true') calls per configuration (default 20). */
  iterations?: number;
  /** File round trips per configuration (default 2). */
  runs?: number;
  labCpus?: number;
  log?: (line: string) => void;
  /** An image other than the default (it must have the agent and the virtio modules). */
  image?: Image;
}

const MEMORY = '256M';
const FILE_BYTES = 16 * 1024 * 1024;
const CONSOLE_FILE_BYTES = 32 * 1024;
const BOOT_TIMEOUT = 300_000;
const OP_TIMEOUT = 600_000;
const WARM_EXECS = 3;

interface Figures {
  label: string;
  execMs: number[];
  writeMBps: number[];
  readMBps: number[];
  fileBytes: number;
  error?: string;
}

/** What the bench does with either VMM: the same calls, timed the same way. */
interface Target {
  exec(cmd: string): Promise<{ exitCode: number }>;
  writeFile(path: string, data: Buffer): Promise<void>;
  readFile(path: string): Promise<Buffer>;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function measure(label: string, t: Target, iterations: number, runs: number, fileBytes: number): Promise<Figures> {
  const f: Figures = { label, execMs: [], writeMBps: [], readMBps: [], fileBytes };
  for (let i = 0; i < WARM_EXECS; i++) await t.exec('true'); // warm: page cache, JIT
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const r = await t.exec('true');
    f.execMs.push(performance.now() - t0);
    if (r.exitCode !== 0) throw new Error(`${label}: exec true exited ${r.exitCode}`);
  }
  const data = randomBytes(fileBytes);
  for (let i = 0; i < runs; i++) {
    let t0 = performance.now();
    await t.writeFile('/tmp/bench.bin', data);
    f.writeMBps.push(fileBytes / 1048576 / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    const back = await t.readFile('/tmp/bench.bin');
    f.readMBps.push(fileBytes / 1048576 / ((performance.now() - t0) / 1000));
    if (back.length !== data.length || sha(back) !== sha(data)) throw new Error(`${label}: readFile returned other bytes than writeFile wrote`);
  }
  await t.exec('rm -f /tmp/bench.bin');
  return f;
}

/**
 * CPU time per MiB of one transfer: the VMM process's own (utime + stime - guest_time from
 * /proc/PID/stat), its guest's (the vCPU inside KVM_RUN, guest_time), the test client's when it
 * runs in another process than the VMM (QEMU's case; ours runs in the VMM's), and the machine's
 * idle share. On a one-CPU lab every VMM or client millisecond is one the guest did not get.
 */
function cpuMeter(pid: number, clientPid?: number): Meter {
  const tick = 1000 / 100; // USER_HZ
  const proc = (p: number): number[] => {
    const f = readFileSync(`/proc/${p}/stat`, 'latin1');
    const v = f.slice(f.lastIndexOf(')') + 2).split(' ').map(Number);
    // proc(5) numbers fields from 1; this array starts at field 3 (state).
    const [utime, stime, guest] = [v[14 - 3]!, v[15 - 3]!, v[43 - 3]!];
    return [(utime + stime - guest) * tick, guest * tick];
  };
  const read = (): number[] => {
    const cpu = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return [...proc(pid), clientPid === undefined ? 0 : proc(clientPid)[0]!, cpu[3]! * tick, cpu.reduce((a, b) => a + b, 0) * tick];
  };
  let last = read();
  return (units = FILE_BYTES / 1048576, unit = 'MiB') => {
    const now = read();
    const d = now.map((x, i) => x - last[i]!);
    last = now;
    const [vmm, guest, client, idle, all] = d as [number, number, number, number, number];
    return `CPU per ${unit}: VMM ${(vmm / units).toFixed(1)} ms${clientPid === undefined ? ' (client included)' : `, client ${(client / units).toFixed(1)} ms`}, `
      + `guest ${(guest / units).toFixed(1)} ms, machine idle ${((100 * idle) / Math.max(1, all)).toFixed(0)}%`;
  };
}

/** A meter: what it counted since its last call, per `units` of `unit` (default: per MiB of the file). */
type Meter = (units?: number, unit?: string) => string;

/**
 * `t` with `meters` read around each file transfer and over the execs before the first one
 * (the warm-up and the timed ones), their figures logged under `label`.
 */
function metered(t: Target, label: string, meters: Meter[], iterations: number, log: (l: string) => void): Target {
  const reset = (): void => { for (const m of meters) m(); };
  const report = (what: string, units?: number, unit?: string): void => log(`  ${label} ${what} ${meters.map((m) => m(units, unit)).join('; ')}`);
  let execs = 0;
  return {
    exec: async (cmd) => {
      if (execs === 0) reset();
      const r = await t.exec(cmd);
      if (++execs === iterations + WARM_EXECS) report('exec', execs, 'exec');
      return r;
    },
    writeFile: async (p, d) => {
      reset();
      await t.writeFile(p, d);
      report('writeFile');
    },
    readFile: async (p) => {
      reset();
      const b = await t.readFile(p);
      report('readFile');
      return b;
    },
  };
}

/** What one file transfer cost our VMM: VM exits, doorbells, interrupts and chains, per MiB. */
function costCounter(vm: TestVm): Meter {
  const read = (): number[] => {
    const m = vm.machine;
    const v = m.platform.virtioPci;
    const exits = m.counters.io + m.counters.mmio + m.counters.other;
    const doorbells = v.reduce((a, d) => a + d.counters.doorbellRings + d.counters.mmioNotifies, 0);
    const qs = v.flatMap((d) => d.queues);
    return [exits, doorbells, qs.reduce((a, q) => a + q.counters.interrupts, 0), qs.reduce((a, q) => a + q.counters.popped, 0)];
  };
  let last = read();
  return (units = FILE_BYTES / 1048576, unit = 'MiB') => {
    const now = read();
    const per = now.map((x, i) => (x - last[i]!) / units);
    last = now;
    return `per ${unit}: ${per[0]!.toFixed(0)} exits, ${per[1]!.toFixed(0)} doorbells, ${per[2]!.toFixed(0)} interrupts, ${per[3]!.toFixed(0)} chains`;
  };
}

async function ours(image: Image, agent: boolean, iterations: number, runs: number, log: (l: string) => void): Promise<Figures> {
  const label = agent ? 'node-kvm agent (virtio-console)' : 'node-kvm serial console';
  const vm = await bootVm({ name: agent ? 'bench-agent' : 'bench-console', image, memory: MEMORY, agent, timeout: BOOT_TIMEOUT });
  try {
    if (agent && vm.channel !== 'agent') throw new Error(`${label}: the agent channel is not up (${vm.agentProblem ?? '?'})`);
    const plain: Target = {
      exec: (cmd) => vm.exec(cmd, { timeout: OP_TIMEOUT }),
      writeFile: (p, d) => vm.writeFile(p, d, { timeout: OP_TIMEOUT }),
      readFile: (p) => vm.readFile(p, { timeout: OP_TIMEOUT }),
    };
    // The console path's transfers are small and slow: its per-MiB figures would mean nothing.
    const t = agent ? metered(plain, label, [costCounter(vm), cpuMeter(process.pid)], iterations, log) : plain;
    return await measure(label, t, agent ? iterations : Math.min(iterations, 10), agent ? runs : 1, agent ? FILE_BYTES : CONSOLE_FILE_BYTES);
  } finally {
    await vm.close();
  }
}

export function qemuAgentArgs(image: Image, sock: string, cmdline: string): string[] {
  return [
    '-enable-kvm', '-cpu', 'host,-xsave', '-M', 'pc', '-m', MEMORY, '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', image.vmlinux, '-initrd', image.initrd, '-append', cmdline,
    '-chardev', `socket,id=agent,path=${sock},server=on,wait=off`,
    '-device', 'virtio-serial-pci', '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
  ];
}

/** QEMU booting `image` with the agent's port on a UNIX socket; the client once it said HELLO. */
export async function qemuWithAgent(image: Image, dir: string): Promise<{ client: AgentClient; child: ChildProcess; socket: Socket; console: () => string }> {
  const sock = join(dir, 'agent.sock');
  const child = spawn('qemu-system-x86_64', qemuAgentArgs(image, sock, `${DEFAULT_CMDLINE} quiet`), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString('latin1')).slice(-8000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString('latin1')).slice(-8000)));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`qemu exited (${code}):\n${out}`))));
  exited.catch(() => undefined);
  try {
    // The socket exists once QEMU has set up its devices; retry until then.
    const deadline = Date.now() + 60_000;
    let socket: Socket | undefined;
    while (socket === undefined) {
      socket = await Promise.race([exited, new Promise<Socket | undefined>((resolve) => {
        const s = connect(sock);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      })]);
      if (socket === undefined) {
        if (Date.now() > deadline) throw new Error(`qemu: no agent socket ${sock} within 60 s:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const client = new AgentClient(socket, 'qemu agent');
    await Promise.race([exited, client.ready(BOOT_TIMEOUT)]);
    return { client, child, socket, console: () => out };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

async function qemu(image: Image, dir: string, iterations: number, runs: number, log: (l: string) => void): Promise<Figures> {
  const { client, child, socket } = await qemuWithAgent(image, dir);
  try {
    const label = 'QEMU agent (virtio-serial-pci)';
    const t = metered({
      exec: (cmd) => client.exec({ command: cmd }, { timeout: OP_TIMEOUT }),
      writeFile: (p, d) => client.writeFile(p, d, { timeout: OP_TIMEOUT }),
      readFile: (p) => client.readFile(p, { timeout: OP_TIMEOUT }),
    }, label, [cpuMeter(child.pid!, process.pid)], iterations, log);
    return await measure(label, t, iterations, runs, FILE_BYTES);
  } finally {
    client.close();
    socket.destroy();
    child.kill('SIGKILL');
  }
}

export async function runExecBench(opts: ExecBenchOptions = {}): Promise<void> {
  const iterations = Math.max(5, opts.iterations ?? 20);
  const runs = Math.max(1, opts.runs ?? 2);
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const inLab = process.env.NODE_KVM_LAB === '1';
  if (!inLab && !(await doctor()).canBootLinuxDirectly) {
    log('exec: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getDefaultImage({ build: true });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const r = await runInLab({ command: [process.execPath, index, 'exec', `--iterations=${iterations}`, `--runs=${runs}`],
      cpus: opts.labCpus, stdout: process.stdout, stderr: process.stderr });
    if (r.exitCode !== 0) throw new Error(`exec bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  const version = qemuVersion();
  if (version === undefined) throw new Error('qemu-system-x86_64 not found: the exec bench compares against QEMU (apt-get install qemu-system-x86)');
  const img = opts.image ?? await getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });
  if (img.manifest.agent === undefined) throw new Error(`image ${img.name} has no guest agent: rebuild it (node-kvm image build)`);
  // Local copies (RAM inside the lab), so neither VMM reads the image over 9p.
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-exec-bench-'));
  try {
    const local: Image = { ...img, vmlinux: join(dir, 'vmlinux'), kernel: join(dir, 'bzImage'), initrd: join(dir, 'initrd.cpio.gz') };
    copyFileSync(img.vmlinux, local.vmlinux);
    copyFileSync(img.kernel, local.kernel);
    copyFileSync(img.initrd, local.initrd);
    log(`exec: exec('true') x${iterations} (median), writeFile+readFile of ${FILE_BYTES / 1048576} MiB x${runs} (console: ` +
      `${CONSOLE_FILE_BYTES / 1024} KiB x1), ${MEMORY}, 1 vCPU, vmlinux, kernel ${img.manifest.kernel.release}, QEMU ${version} -M pc; ` +
      `${inLab ? 'inside the nested lab (L2 guests on kvm_amd, emulated SVM under TCG)' : 'on this host'}`);
    const results: Figures[] = [];
    for (const [name, run] of [
      ['agent', () => ours(local, true, iterations, runs, log)],
      ['qemu', () => qemu(local, dir, iterations, runs, log)],
      ['console', () => ours(local, false, iterations, runs, log)],
    ] as const) {
      try {
        results.push(await run());
      } catch (e) {
        log(`  ${name}: FAILED: ${(e as Error).message.slice(0, 2000)}`);
        results.push({ label: name, execMs: [], writeMBps: [], readMBps: [], fileBytes: 0, error: (e as Error).message });
      }
    }
    const med = (xs: number[]): number => (xs.length === 0 ? Number.NaN : median(xs));
    log(`  ${'configuration'.padEnd(34)} ${'exec true (ms)'.padStart(15)} ${'write MiB/s'.padStart(12)} ${'read MiB/s'.padStart(12)}  file`);
    for (const f of results) {
      log(`  ${f.label.padEnd(34)} ${med(f.execMs).toFixed(2).padStart(15)} ${med(f.writeMBps).toFixed(3).padStart(12)} ${med(f.readMBps).toFixed(3).padStart(12)}  ` +
        `${f.fileBytes >= 1048576 ? `${f.fileBytes / 1048576} MiB` : `${f.fileBytes / 1024} KiB`}${f.error ? '  (failed)' : ''}`);
    }
    const [agent, q, cons] = results as [Figures, Figures, Figures];
    const ratio = (a: number, b: number): string => (Number.isFinite(a / b) ? `${(a / b).toFixed(3)}×` : 'n/a');
    log('  ratios (medians):');
    log(`    exec round trip  agent/QEMU ${ratio(med(agent.execMs), med(q.execMs))} (goal ≤ 1)   agent/console ${ratio(med(agent.execMs), med(cons.execMs))}`);
    log(`    writeFile        agent/QEMU ${ratio(med(agent.writeMBps), med(q.writeMBps))} (goal ≥ 1)   agent/console ${ratio(med(agent.writeMBps), med(cons.writeMBps))} (goal ≥ 100)`);
    log(`    readFile         agent/QEMU ${ratio(med(agent.readMBps), med(q.readMBps))} (goal ≥ 1)   agent/console ${ratio(med(agent.readMBps), med(cons.readMBps))} (goal ≥ 100)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
