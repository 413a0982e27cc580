// `npm run bench -- net`: TCP throughput both ways (iperf3) and ping RTT between a Linux guest
// and an iperf3 server in a network namespace behind a TAP, over our RTL8139 model and over
// QEMU's `-device rtl8139`, with the same kernel, initrd and guest commands, in one run (one
// lab boot on hosts that cannot boot Linux directly). QEMU uses KVM as we do (-accel kvm).
//
// The guest image is "net": the default image plus the host's iperf3 (and its libraries);
// install it with `apt-get install iperf3`. Also reported for our model: exits (PIO + MMIO) per
// packet the NIC moved during each transfer, and the NIC's RX backpressure counters. For both
// VMMs, when debugfs is mounted (root): KVM's own counters, per MB the guest's driver moved
// either way: every VM exit (those KVM handles itself too, such as coalesced MMIO writes, HLT
// and interrupts), and of them the port I/O exits (KVM counts every port access it intercepts)
// plus the MMIO exits that reached the VMM.
//
// Why rounds and medians: on one TCG CPU a guest->host transfer settles into a state and stays
// there, for either VMM. One skb costs about the same cycle whatever its size, and the guest's
// TSO autosizing (tcp_tso_autosize) sizes skbs by the connection's min_rtt: it adds
// 64 KiB >> (min_rtt / 512 us) to about a millisecond of the pacing rate, so below ~1.5 ms of
// min_rtt the guest sends large TSO frames (10-43 KB per skb); from ~2.5 ms up that term is
// under 2 KiB and, unless the pacing rate is already high, skbs fall to two segments (~2.9 KB),
// with the cost per byte of everything (guest, VMM, host stack) 4-6x higher. min_rtt is a
// minimum over the connection, so its first fast samples decide the state; which one a
// 10 s run lands in varies from run to run, so one run per VMM says little
// (docs/benchmarks.md). The guest's min_rtt is read from iperf3's socket by bench/c/tcp-min-rtt.c (built
// here with gcc -static and appended to the initrd) and printed for both VMMs. `--tso-rtt-log=12`
// sets the guest's net.ipv4.tcp_tso_rtt_log for both, so that RTTs below ~4 ms no longer shrink
// its skbs: what each VMM does once that is out of the way.
import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { doctor, qemuVersion } from '../lib/doctor.js';
import { InvalidArgumentError } from '../lib/errors.js';
import { CpioWriter } from '../lib/images/cpio.js';
import { getImage, type Image } from '../lib/images/index.js';
import { runInLab } from '../lib/lab/index.js';
import { DEFAULT_CMDLINE } from '../lib/machine/cmdline.js';
import { Machine } from '../lib/machine/index.js';
import { findCommand, NetNs } from '../lib/net/netns.js';
import { TapBackend } from '../lib/net/tap.js';
import type { NetBackend } from '../lib/net/backend.js';
import { userNet } from '../lib/net/user.js';
import { boundPorts, DEFAULT_USER_ADDRESSING, findPasst, freePort, passtArgv } from '../lib/net/passt.js';

export interface NetBenchOptions {
  /** iperf3 seconds per direction (default 10). */
  iterations?: number;
  /**
   * Rounds of (node-kvm 8139cp, QEMU), alternating, in the one lab boot (default 3); the table
   * shows each one's median and the rounds follow it. 8139too runs once, after them.
   */
  runs?: number;
  /** CPUs of the nested lab when the bench runs in one (default 1). */
  labCpus?: number;
  /**
   * Seconds of unmeasured guest->host iperf3 before both directions are measured again
   * (default 20; 0 skips it): the steady state once the JIT has compiled the network path.
   */
  warmup?: number;
  /**
   * The guest's net.ipv4.tcp_tso_rtt_log, set for both VMMs before the transfers (default: left
   * at the kernel's 9). 12 makes TSO sizing ignore RTTs below ~4 ms: a test of the claim above
   * that this term decides the guest->host state in the lab.
   */
  tsoRttLog?: number;
  /**
   * 'tap' (default): the guest reaches an iperf3 server in a network namespace over a TAP,
   * against QEMU's rtl8139 on a TAP. 'user': the guest reaches an iperf3 server on the host's
   * loopback through the gateway address of a user network, ours (passt) against QEMU's
   * rtl8139 on `-nic user` (slirp) and on passt (`-netdev stream`).
   */
  backend?: 'tap' | 'user';
  log?: (line: string) => void;
}

const HOST_IP = '10.0.2.2';
const GUEST_IP = '10.0.2.15';
const MARK = '@@NKVM-BENCH';

interface Transfer {
  mbps: number;
  retransmits: number | undefined;
  /** The sender's smoothed RTT (mean over iperf3's samples, ms) and its largest cwnd (KiB). */
  meanRttMs?: number;
  /** The guest kernel's min_rtt of the connection (ms), from bench/c/tcp-min-rtt.c. */
  minRttMs?: number;
  maxCwndKiB?: number;
  /** node-kvm only: PIO+MMIO exits per frame the NIC moved, frames, RX held back / missed. */
  exitsPerPacket?: number;
  packets?: number;
  /** Bytes the guest's driver moved both ways (/proc/net/dev), during the transfer. */
  guestBytes?: number;
  /**
   * Both VMMs, from KVM's own counters (debugfs): every VM exit, and the I/O + MMIO exits among
   * them, per MB the guest moved. Per MB, not per packet: the VMMs' guests cut the same bytes
   * into skbs of different sizes.
   */
  kvmExitsPerMB?: number;
  kvmIoMmioPerMB?: number;
  rxQueued?: number;
  rxMissed?: number;
}

interface Sample {
  label: string;
  up?: Transfer;
  down?: Transfer;
  /** The same two transfers again after the warm-up (NetBenchOptions.warmup). */
  warmUp?: Transfer;
  warmDown?: Transfer;
  warmTxFrameBytes?: number;
  pingAvgMs?: number;
  /** Guest→host: bytes per packet the guest's driver handed the NIC (TSO frames count once). */
  guestTxFrameBytes?: number;
  error?: string;
}

/**
 * Seconds iperf3 leaves out at the start of each direction (`-O`), for both VMMs alike: TCP's
 * slow start, and for node-kvm the JIT's warm-up of the device model's hot paths, which under
 * the lab's TCG costs a tenth or more of the CPU for the first seconds. The figures are the
 * steady state that follows.
 */
const OMIT_SECONDS = 2;

/** Where the min_rtt probe lands in the guest (appended to the initrd by withMinRttProbe). */
const PROBE_PATH = '/usr/bin/tcp-min-rtt';

/**
 * Build bench/c/tcp-min-rtt.c (static) and append it to the initrd as a second cpio archive
 * (the kernel unpacks one after another). Without gcc or a static libc the bench runs without it.
 */
function withMinRttProbe(initrd: string, dir: string, log: (l: string) => void): void {
  const exe = join(dir, 'tcp-min-rtt');
  const src = fileURLToPath(new URL('../../bench/c/tcp-min-rtt.c', import.meta.url));
  try {
    execFileSync('gcc', ['-static', '-O2', '-o', exe, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    log(`net: no guest min_rtt probe (gcc -static ${src} failed: ${String((e as Error).message).split('\n')[0]})`);
    return;
  }
  const cpio = new CpioWriter();
  cpio.dir('usr');
  cpio.dir('usr/bin');
  cpio.file(PROBE_PATH.slice(1), readFileSync(exe), 0o755);
  const base = readFileSync(initrd);
  // The next archive starts on a 4-byte boundary; zeros between archives are skipped.
  writeFileSync(initrd, Buffer.concat([base, Buffer.alloc((512 - (base.length % 512)) % 512), cpio.finish()]));
}

/**
 * The guest's whole job: ping, iperf3 up, iperf3 down (reverse), each between markers; then,
 * with a warm-up, `warmup` s of unmeasured iperf3 up and both directions again.
 */
function guestScript(seconds: number, warmup: number, tsoRttLog: number | undefined, port: number): string {
  // The min_rtt probe, when the initrd has it, samples the guest->host connection beside iperf3.
  const probe = (key: string): string => `{ [ -x ${PROBE_PATH} ] && ${PROBE_PATH} iperf3 ${port} 500 ${seconds + 60} > /tmp/min-rtt-${key} & }`;
  const probed = (key: string): string => `wait; echo ${MARK}-${key}RTT $(cat /tmp/min-rtt-${key} 2>/dev/null)`;
  const warm = warmup <= 0 ? [] : [
    `iperf3 -c ${HOST_IP} -p ${port} -t ${warmup} -i 0 > /dev/null`,
    `echo ${MARK}-DEV2 $(grep eth0: /proc/net/dev)`,
    probe('WUP'),
    `echo ${MARK}-WUP; iperf3 -c ${HOST_IP} -p ${port} -t ${seconds} -O ${OMIT_SECONDS} -i 0 -J; echo ${MARK}-WUPEND`,
    probed('WUP'),
    `echo ${MARK}-DEV3 $(grep eth0: /proc/net/dev)`,
    `echo ${MARK}-WDOWN; iperf3 -c ${HOST_IP} -p ${port} -t ${seconds} -O ${OMIT_SECONDS} -i 0 -R -J; echo ${MARK}-WDOWNEND`,
    `echo ${MARK}-DEVD3 $(grep eth0: /proc/net/dev)`,
  ];
  return [
    ...(tsoRttLog === undefined ? [] : [`echo ${tsoRttLog} > /proc/sys/net/ipv4/tcp_tso_rtt_log`]),
    `echo ${MARK}-PING; ping -c 10 -i 0.2 ${HOST_IP} | tail -1`,
    // The driver counts one TX packet per skb: a TSO frame is one, however many segments.
    `echo ${MARK}-DEV0 $(grep eth0: /proc/net/dev)`,
    probe('UP'),
    `echo ${MARK}-UP; iperf3 -c ${HOST_IP} -p ${port} -t ${seconds} -O ${OMIT_SECONDS} -i 0 -J; echo ${MARK}-UPEND`,
    `echo ${MARK}-DEV1 $(grep eth0: /proc/net/dev)`,
    probed('UP'),
    `echo ${MARK}-DEVD0 $(grep eth0: /proc/net/dev)`,
    `echo ${MARK}-DOWN; iperf3 -c ${HOST_IP} -p ${port} -t ${seconds} -O ${OMIT_SECONDS} -i 0 -R -J; echo ${MARK}-DOWNEND`,
    `echo ${MARK}-DEVD1 $(grep eth0: /proc/net/dev)`,
    ...warm,
  ].join('; ');
}

interface IperfJson {
  end?: {
    sum_sent?: { bits_per_second?: number; retransmits?: number };
    sum_received?: { bits_per_second?: number };
    // TCP_INFO of the sending side, as iperf3 read it (rtt in µs, cwnd in bytes).
    streams?: { sender?: { mean_rtt?: number; max_snd_cwnd?: number } }[];
  };
  error?: string;
}

function between(text: string, start: string, end: string): string | undefined {
  const i = text.indexOf(`${start}\n`);
  if (i < 0) return undefined;
  const j = text.indexOf(end, i);
  return j < 0 ? undefined : text.slice(i + start.length + 1, j);
}

/** The measured transfers: the guest script's marker for each, and its field in a Sample. */
const PHASES = [['UP', 'up'], ['DOWN', 'down'], ['WUP', 'warmUp'], ['WDOWN', 'warmDown']] as const;
type PhaseKey = (typeof PHASES)[number][1];
const isWarm = (key: PhaseKey): boolean => key === 'warmUp' || key === 'warmDown';

/** Parse the console text of a finished guest script. */
function parse(label: string, raw: string, warmed: boolean): Sample {
  const text = raw.replace(/\r/g, '');
  const s: Sample = { label };
  const ping = /round-trip min\/avg\/max = [\d.]+\/([\d.]+)\/[\d.]+ ms/.exec(text.slice(text.indexOf(`${MARK}-PING`)));
  if (ping !== null) s.pingAvgMs = Number(ping[1]);
  // /proc/net/dev: "eth0: rxBytes rxPackets ... (8 RX fields) txBytes txPackets ..."
  const dev = (k: string): number[] | undefined => {
    const m = new RegExp(`${MARK}-${k} eth0:\\s*([\\d\\s]+)`).exec(text);
    return m === null ? undefined : m[1]!.trim().split(/\s+/).map(Number);
  };
  const d0 = dev('DEV0');
  const d1 = dev('DEV1');
  if (d0 !== undefined && d1 !== undefined && d1[9]! > d0[9]!) s.guestTxFrameBytes = (d1[8]! - d0[8]!) / (d1[9]! - d0[9]!);
  const d2 = dev('DEV2');
  const d3 = dev('DEV3');
  if (d2 !== undefined && d3 !== undefined && d3[9]! > d2[9]!) s.warmTxFrameBytes = (d3[8]! - d2[8]!) / (d3[9]! - d2[9]!);
  // The /proc/net/dev lines around each transfer: rx + tx bytes of the guest's driver.
  const devPairs: Record<PhaseKey, [string, string]> = { up: ['DEV0', 'DEV1'], down: ['DEVD0', 'DEVD1'], warmUp: ['DEV2', 'DEV3'], warmDown: ['DEV3', 'DEVD3'] };
  const guestBytes = (key: PhaseKey): number | undefined => {
    const a = dev(devPairs[key][0]);
    const b = dev(devPairs[key][1]);
    return a === undefined || b === undefined ? undefined : b[0]! - a[0]! + b[8]! - a[8]!;
  };
  for (const [dir, key] of PHASES) {
    const body = between(text, `${MARK}-${dir}`, `${MARK}-${dir}END`);
    if (body === undefined) {
      if (warmed || !isWarm(key)) s.error = `no iperf3 ${key} output`;
      continue;
    }
    const json = JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1)) as IperfJson;
    if (json.error !== undefined) { s.error = `iperf3 ${key}: ${json.error}`; continue; }
    const bps = json.end?.sum_received?.bits_per_second ?? json.end?.sum_sent?.bits_per_second ?? 0;
    // TCP_INFO of the sender: the guest's for `up`, which is the row the report prints.
    const sender = json.end?.streams?.[0]?.sender;
    const probe = new RegExp(`${MARK}-${dir}RTT TCPINFO .*min_rtt_us=(\\d+)`).exec(text);
    s[key] = { mbps: bps / 1e6, retransmits: json.end?.sum_sent?.retransmits,
      meanRttMs: sender?.mean_rtt === undefined ? undefined : sender.mean_rtt / 1000,
      maxCwndKiB: sender?.max_snd_cwnd === undefined ? undefined : sender.max_snd_cwnd / 1024,
      minRttMs: probe === null ? undefined : Number(probe[1]) / 1000, guestBytes: guestBytes(key) };
  }
  return s;
}

/** KVM's exit counters for the VMs of one process, summed over their vCPUs. */
interface KvmExitCounts { exits: number; ioMmio: number }

const KVM_DEBUGFS = '/sys/kernel/debug/kvm';

/**
 * Read from debugfs (one directory per VM, named PID-FD), which KVM keeps for any VMM alike: the
 * one count both VMMs can be compared by. Undefined without debugfs (not mounted, or not root).
 */
function readKvmExitCounts(pid: number): KvmExitCounts | undefined {
  try {
    const dirs = readdirSync(KVM_DEBUGFS).filter((d) => d.startsWith(`${pid}-`));
    if (dirs.length === 0) return undefined;
    const c: KvmExitCounts = { exits: 0, ioMmio: 0 };
    const num = (d: string, f: string): number => Number(readFileSync(join(KVM_DEBUGFS, d, f), 'utf8'));
    for (const d of dirs) {
      c.exits += num(d, 'exits');
      c.ioMmio += num(d, 'io_exits') + num(d, 'mmio_exits');
    }
    return c;
  } catch {
    return undefined;
  }
}

/** Mount debugfs in the lab's L1 (a throwaway VM) if needed; elsewhere only say it is missing. */
function checkKvmDebugfs(inLab: boolean, log: (l: string) => void): void {
  if (existsSync(KVM_DEBUGFS)) return;
  if (inLab) {
    try {
      execFileSync('mount', ['-t', 'debugfs', 'debugfs', '/sys/kernel/debug'], { stdio: 'ignore' });
    } catch {
      // reported below
    }
    if (existsSync(KVM_DEBUGFS)) return;
  }
  log(`net: no ${KVM_DEBUGFS} (debugfs not mounted, or not root): the KVM exits rows stay empty`);
}

/**
 * Samples a VMM's KVM exit counters the moment each transfer's start and end markers appear on
 * its console (fed the console text as it grows), then divides by the bytes the guest moved.
 */
class KvmExitWatch {
  private readonly seen = new Map<string, KvmExitCounts | undefined>();
  private scanned = 0;

  constructor(private readonly pid: number) {}

  feed(text: string): void {
    // Markers are whole lines; rescan a little before the new text in case one was split.
    const from = Math.max(0, this.scanned - 64);
    this.scanned = text.length;
    for (const [dir] of PHASES) {
      for (const m of [`${MARK}-${dir}\r\n`, `${MARK}-${dir}END`]) {
        if (!this.seen.has(m) && text.indexOf(m, from) >= 0) this.seen.set(m, readKvmExitCounts(this.pid));
      }
    }
  }

  /** Fill each transfer's exits per MB in `s` (parsed from the same console). */
  apply(s: Sample): void {
    for (const [dir, key] of PHASES) {
      const t = s[key];
      const a = this.seen.get(`${MARK}-${dir}\r\n`);
      const b = this.seen.get(`${MARK}-${dir}END`);
      if (t === undefined || a === undefined || b === undefined || !t.guestBytes) continue;
      t.kvmExitsPerMB = (b.exits - a.exits) / (t.guestBytes / 1e6);
      t.kvmIoMmioPerMB = (b.ioMmio - a.ioMmio) / (t.guestBytes / 1e6);
    }
  }
}

async function withNetns<T>(fn: (ns: NetNs) => Promise<T>): Promise<T> {
  const ns = await NetNs.create({ prefix: 'nkvmbench' });
  try {
    // Any address: the TAP and its address appear later (QEMU creates its TAP itself).
    ns.spawn(['iperf3', '-s']).on('error', () => undefined);
    return await fn(ns);
  } finally {
    await ns.close();
  }
}

/** What each VMM run does: the guest script's parameters. */
interface Job { seconds: number; warmup: number; tsoRttLog: number | undefined; port: number }

function cmdline(job: Job): string {
  const run64 = Buffer.from(guestScript(job.seconds, job.warmup, job.tsoRttLog, job.port)).toString('base64');
  return `${DEFAULT_CMDLINE} quiet nkvm.ip=${GUEST_IP}/24 nkvm.run64=${run64}`;
}

type Files = { kernel: string; initrd: string };

/** Our VMM on `backend`: counters sampled at the guest's markers. */
async function measureNodeKvm(files: Files, revision: 0x10 | 0x20, job: Job, backend: NetBackend, label: string): Promise<Sample> {
  const { warmup } = job;
  await using m = await Machine.create({ kernel: files.kernel, initrd: files.initrd, cmdline: cmdline(job), memory: '256M', cpus: 1,
    net: [{ backend, revision }] });
  const nic = m.platform.nics[0]!;
  let text = '';
  const kvmWatch = new KvmExitWatch(process.pid);
  m.console.on('data', (d: Buffer) => { text += d.toString('latin1'); kvmWatch.feed(text); });
  const snap = (): { exits: number; packets: number; queued: number; missed: number } => ({
    exits: m.counters.io + m.counters.mmio, packets: nic.stats.txFrames + nic.stats.rxFrames,
    queued: nic.stats.rxQueued, missed: nic.stats.rxMissed,
  });
  const phase = async (start: string, end: string): Promise<Partial<Transfer>> => {
    await m.console.waitFor(start, { timeout: 600_000 });
    const a = snap();
    await m.console.waitFor(end, { timeout: 600_000 });
    const b = snap();
    const packets = b.packets - a.packets;
    return { exitsPerPacket: packets > 0 ? (b.exits - a.exits) / packets : undefined, packets,
      rxQueued: b.queued - a.queued, rxMissed: b.missed - a.missed };
  };
  m.start();
  const counted: Partial<Record<PhaseKey, Partial<Transfer>>> = {};
  for (const [dir, key] of PHASES) {
    if (warmup > 0 || !isWarm(key)) counted[key] = await phase(`${MARK}-${dir}\r\n`, `${MARK}-${dir}END`);
  }
  const r = await m.wait();
  const s = parse(label, text, warmup > 0);
  for (const [, key] of PHASES) if (s[key] !== undefined) Object.assign(s[key]!, counted[key]);
  kvmWatch.apply(s);
  if (r.reason !== 'poweroff') s.error = `guest ended with ${r.reason}`;
  return s;
}

const nicName = (revision: 0x10 | 0x20): string => (revision === 0x20 ? '8139cp' : '8139too');

/** Our VMM: TapBackend moved into the namespace. */
async function runNodeKvm(files: Files, revision: 0x10 | 0x20, job: Job): Promise<Sample> {
  return withNetns(async (ns) => {
    const tap = TapBackend.open();
    try {
      await ns.adoptLink(tap.name, `${HOST_IP}/24`);
      return await measureNodeKvm(files, revision, job, tap, `node-kvm ${nicName(revision)}`);
    } finally {
      tap.close();
    }
  });
}

/** Our VMM on a `user` network (passt), the iperf3 server on the host's loopback. */
async function runNodeKvmUser(files: Files, revision: 0x10 | 0x20, job: Job): Promise<Sample> {
  return withLoopbackIperf(job.port, async () => {
    const user = userNet();
    try {
      const s = await measureNodeKvm(files, revision, job, user, `node-kvm ${nicName(revision)} user`);
      if (user.stats.txDropped > 0) s.error = `${user.stats.txDropped} frames dropped on the way to passt`;
      return s;
    } finally {
      user.close();
      await user.exited;
    }
  });
}

/** An iperf3 server on 127.0.0.1:port for the length of `fn`. */
async function withLoopbackIperf<T>(port: number, fn: () => Promise<T>): Promise<T> {
  const server = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  server.on('error', () => undefined);
  const gone = new Promise<void>((resolve) => server.once('close', () => resolve()));
  try {
    for (let i = 0; i < 500 && !boundPorts('tcp').has(port); i++) await new Promise((r) => setTimeout(r, 10));
    return await fn();
  } finally {
    server.kill('SIGKILL');
    await gone;
  }
}

/**
 * Watch a QEMU whose serial console is its stdout until it exits; `before` runs once it has
 * started (configures its network) and may return an error that ends the run.
 */
async function watchQemu(child: ChildProcess, label: string, job: Job, before?: () => Promise<string | undefined>): Promise<Sample> {
  let text = '';
  let err = '';
  // `ip netns exec` execs QEMU in place: this pid is QEMU's.
  const kvmWatch = child.pid === undefined ? undefined : new KvmExitWatch(child.pid);
  child.stdout!.on('data', (d: Buffer) => { text += d.toString('latin1'); kvmWatch?.feed(text); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString('utf8'); });
  child.on('error', (e) => { err += e.message; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const problem = await before?.();
  if (problem !== undefined) {
    child.kill('SIGKILL');
    await exited;
    return { label, error: `${problem}: ${err.trim()}` };
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 900_000);
  const code = await exited;
  clearTimeout(timer);
  const s = parse(label, text, job.warmup > 0);
  kvmWatch?.apply(s);
  if (code !== 0) s.error = `QEMU exited with ${code}: ${err.trim()}`;
  return s;
}

function qemuArgv(files: Files, job: Job, inLab: boolean, net: string[]): string[] {
  // Inside the lab TCG's SVM misses XSETBV: hide XSAVE from the L2 guest, as Machine does.
  const cpu = inLab ? 'host,-xsave' : 'host';
  return ['-accel', 'kvm', '-cpu', cpu, '-m', '256M', '-smp', '1',
    '-M', 'pc', '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', files.kernel, '-initrd', files.initrd, '-append', cmdline(job), ...net];
}

/** QEMU, started inside the namespace so its TAP is created there; its serial console on stdout. */
async function runQemu(files: Files, job: Job, inLab: boolean): Promise<Sample> {
  return withNetns(async (ns) => {
    const ifname = 'nkvmq0';
    const child: ChildProcess = ns.spawn(['qemu-system-x86_64', ...qemuArgv(files, job, inLab,
      ['-netdev', `tap,id=n0,ifname=${ifname},script=no,downscript=no`, '-device', 'rtl8139,netdev=n0,mac=52:54:00:12:34:56'])]);
    return watchQemu(child, 'QEMU rtl8139', job, async () => {
      // QEMU creates the TAP when it starts: configure it as soon as it exists.
      for (let i = 0; ; i++) {
        const r = await ns.ip(['link', 'show', ifname], { check: false });
        if (r.code === 0) break;
        if (i > 600 || child.exitCode !== null) return `QEMU did not create ${ifname}`;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await ns.addAddress(ifname, `${HOST_IP}/24`);
      await ns.setLinkUp(ifname);
      return undefined;
    });
  });
}

/**
 * QEMU's rtl8139 on a user network: its built-in slirp (`-nic user`), or a passt it connects to
 * over a UNIX socket (`-netdev stream`), passt started as ours starts it but listening on a path.
 */
async function runQemuUser(files: Files, job: Job, inLab: boolean, stack: 'slirp' | 'passt'): Promise<Sample> {
  return withLoopbackIperf(job.port, async () => {
    if (stack === 'slirp') {
      const child = spawn('qemu-system-x86_64', qemuArgv(files, job, inLab,
        ['-nic', `user,model=rtl8139,mac=52:54:00:12:34:56,net=10.0.2.0/24,host=${HOST_IP}`]), { stdio: ['ignore', 'pipe', 'pipe'] });
      return watchQemu(child, 'QEMU slirp', job);
    }
    const dir = mkdtempSync(join(tmpdir(), 'node-kvm-net-bench-passt-'));
    // passt started as root becomes nobody before it binds its socket: let it create one here.
    if (process.getuid?.() === 0) chmodSync(dir, 0o777);
    const sock = join(dir, 'passt.socket');
    const argv = passtArgv(DEFAULT_USER_ADDRESSING, []);
    argv.splice(argv.indexOf('--fd'), 2, '--socket', sock);
    const passt = spawn(findPasst(), argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let passtErr = '';
    passt.stderr!.on('data', (d: Buffer) => { passtErr = (passtErr + d.toString('utf8')).slice(-2000); });
    passt.on('error', () => undefined);
    const passtGone = new Promise<void>((resolve) => passt.once('close', () => resolve()));
    try {
      for (let i = 0; i < 1000 && !existsSync(sock) && passt.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
      if (!existsSync(sock)) return { label: 'QEMU passt', error: `passt did not listen on ${sock}: ${passtErr.trim()}` };
      const child = spawn('qemu-system-x86_64', qemuArgv(files, job, inLab,
        ['-netdev', `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`, '-device', 'rtl8139,netdev=n0,mac=52:54:00:12:34:56']),
      { stdio: ['ignore', 'pipe', 'pipe'] });
      return await watchQemu(child, 'QEMU passt', job);
    } finally {
      passt.kill('SIGKILL');
      await passtGone;
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const f1 = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(v < 10 ? 2 : 1));
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);

function median(values: (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1]! + v[mid]!) / 2;
}

/** One run: guest->host Mbit/s @ guest TX bytes/skb, host->guest Mbit/s; the same warm. */
function runLine(s: Sample, warmup: number): string {
  const warm = warmup > 0 ? `; ${f1(s.warmUp?.mbps)} @ ${f1(s.warmTxFrameBytes)} (${f1(s.warmUp?.minRttMs)}), ${f1(s.warmDown?.mbps)}` : '';
  return `${f1(s.up?.mbps)} @ ${f1(s.guestTxFrameBytes)} (${f1(s.up?.minRttMs)}), ${f1(s.down?.mbps)}${warm}`;
}

/** Which run is ours and which are the references its ratios are against. */
interface Comparison { ours: string; refs: string[]; path: string }

const TAP_COMPARISON: Comparison = { ours: 'node-kvm 8139cp', refs: ['QEMU rtl8139'], path: `guest ${GUEST_IP} -> netns ${HOST_IP} over a TAP` };
const USER_COMPARISON: Comparison = { ours: 'node-kvm 8139cp user', refs: ['QEMU slirp', 'QEMU passt'],
  path: `guest ${GUEST_IP} -> ${HOST_IP}, the gateway of a user network, -> iperf3 on the host's 127.0.0.1; ours and QEMU passt: passt, QEMU slirp: -nic user; rtl8139 everywhere` };

function report(samples: Sample[], seconds: number, warmup: number, where: string, log: (l: string) => void, cmp: Comparison = TAP_COMPARISON): void {
  const labels = [...new Set(samples.map((s) => s.label))];
  const groups = labels.map((label) => samples.filter((s) => s.label === label));
  const rounds = Math.max(...groups.map((g) => g.length));
  const ours = groups.find((g) => g[0]!.label === cmp.ours);
  const refs = cmp.refs.map((r) => groups.find((g) => g[0]!.label === r));
  log(`net: iperf3 -t ${seconds} -O ${OMIT_SECONDS} each way (the first ${OMIT_SECONDS} s not counted), ping x10 (${cmp.path}), ${where}, one lab boot`);
  if (rounds > 1) log(`net: each column is the median of its runs (listed below the table); ${[cmp.ours, ...cmp.refs].join(', ')} alternate`);
  const cols = groups.map((g) => `${g[0]!.label}${g.length > 1 ? ` (${g.length})` : ''}`.padStart(22)).join('');
  log(`${''.padEnd(30)}${cols}   ${cmp.refs.map((r) => `ours/${r}`).join('  ')}`);
  const row = (name: string, get: (s: Sample) => number | undefined, r = true): void => {
    const m = (g: Sample[] | undefined): number | undefined => (g === undefined ? undefined : median(g.map(get)));
    log(`${name.padEnd(30)}${groups.map((g) => f1(m(g)).padStart(22)).join('')}${r ? `   ${refs.map((g, i) => ratio(m(ours), m(g)).padEnd(`ours/${cmp.refs[i]!}`.length + 2)).join('')}` : ''}`);
  };
  row('guest->host Mbit/s', (s) => s.up?.mbps);
  row('  retransmits', (s) => s.up?.retransmits, false);
  row('  guest sender RTT ms (mean)', (s) => s.up?.meanRttMs, false);
  row('  guest min_rtt ms (TSO sizing)', (s) => s.up?.minRttMs, false);
  row('  guest sender max cwnd KiB', (s) => s.up?.maxCwndKiB, false);
  row('host->guest Mbit/s', (s) => s.down?.mbps);
  row('  retransmits', (s) => s.down?.retransmits, false);
  row('ping avg ms', (s) => s.pingAvgMs);
  row('guest TX bytes/skb (up)', (s) => s.guestTxFrameBytes, false);
  row('exits/packet guest->host', (s) => s.up?.exitsPerPacket, false);
  row('exits/packet host->guest', (s) => s.down?.exitsPerPacket, false);
  row('KVM exits/MB guest->host', (s) => s.up?.kvmExitsPerMB);
  row('  of them I/O+MMIO', (s) => s.up?.kvmIoMmioPerMB);
  row('KVM exits/MB host->guest', (s) => s.down?.kvmExitsPerMB);
  row('  of them I/O+MMIO', (s) => s.down?.kvmIoMmioPerMB);
  row('RX held back (host->guest)', (s) => s.down?.rxQueued, false);
  row('RX missed (host->guest)', (s) => s.down?.rxMissed, false);
  if (warmup > 0) {
    log(`after ${warmup} s more of unmeasured guest->host iperf3 (the JIT has compiled the network path), both again:`);
    row('guest->host Mbit/s, warm', (s) => s.warmUp?.mbps);
    row('  guest sender RTT ms (mean)', (s) => s.warmUp?.meanRttMs, false);
    row('  guest min_rtt ms (TSO sizing)', (s) => s.warmUp?.minRttMs, false);
    row('host->guest Mbit/s, warm', (s) => s.warmDown?.mbps);
    row('guest TX bytes/skb (up), warm', (s) => s.warmTxFrameBytes, false);
    row('exits/packet guest->host, warm', (s) => s.warmUp?.exitsPerPacket, false);
    row('exits/packet host->guest, warm', (s) => s.warmDown?.exitsPerPacket, false);
    row('KVM exits/MB guest->host, warm', (s) => s.warmUp?.kvmExitsPerMB);
    row('  of them I/O+MMIO', (s) => s.warmUp?.kvmIoMmioPerMB);
    row('KVM exits/MB host->guest, warm', (s) => s.warmDown?.kvmExitsPerMB);
    row('  of them I/O+MMIO', (s) => s.warmDown?.kvmIoMmioPerMB);
  }
  if (rounds > 1) {
    log(`runs (guest->host Mbit/s @ guest TX bytes/skb (guest min_rtt ms), host->guest Mbit/s${warmup > 0 ? '; the same warm' : ''}):`);
    for (const g of groups) log(`  ${g[0]!.label.padEnd(18)} ${g.map((s) => runLine(s, warmup)).join('  |  ')}`);
  }
  for (const s of samples) if (s.error !== undefined) log(`  ${s.label}: ${s.error}`);
}

export async function runNetBench(opts: NetBenchOptions = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const seconds = Math.max(2, opts.iterations ?? 10);
  const rounds = Math.max(1, opts.runs ?? 3);
  const warmup = Math.max(0, opts.warmup ?? 20);
  const tsoRttLog = opts.tsoRttLog;
  const backend = opts.backend ?? 'tap';
  if (backend !== 'tap' && backend !== 'user') throw new InvalidArgumentError(`--backend must be tap or user, got ${String(backend)}`);
  if (tsoRttLog !== undefined && !(Number.isInteger(tsoRttLog) && tsoRttLog >= 0 && tsoRttLog <= 31)) {
    throw new InvalidArgumentError(`--tso-rtt-log must be an integer 0..31 (net.ipv4.tcp_tso_rtt_log), got ${tsoRttLog}`);
  }
  const iperf = findCommand('iperf3');
  if (iperf === undefined) throw new Error('iperf3 not found: the net bench runs it on both sides (apt-get install iperf3)');
  const inLab = process.env.NODE_KVM_LAB === '1';
  const buildOptions = { add: [`${iperf}:/usr/bin/iperf3`] };
  if (!inLab && !(await doctor()).canBootLinuxDirectly) {
    log('net: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getImage('net', { build: true, buildOptions, log: (l) => log(`net: image: ${l}`) });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    // Each VMM run: a boot, ping, four transfers and the warm-up, plus slack for a slow L1.
    const perRunS = 60 + 4 * (seconds + 5) + warmup;
    const r = await runInLab({ command: [process.execPath, index, 'net', `--iterations=${seconds}`, `--runs=${rounds}`, `--warmup=${warmup}`, `--backend=${backend}`,
      ...(tsoRttLog === undefined ? [] : [`--tso-rtt-log=${tsoRttLog}`])], cpus: opts.labCpus,
      stdout: process.stdout, stderr: process.stderr, log: (l) => log(`net: lab: ${l}`), timeoutMs: Math.max(1800, 300 + 2 * ((backend === 'user' ? 3 : 2) * rounds + 1) * perRunS) * 1000 });
    if (r.exitCode !== 0) throw new Error(`net bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  if (qemuVersion() === undefined) throw new Error('qemu-system-x86_64 not found: the net bench compares against QEMU (apt-get install qemu-system-x86)');
  // Inside the lab there is no apt mirror: the image must have been built on the host.
  const img: Image = await getImage('net', { build: !inLab, buildOptions, verify: inLab ? 'size' : 'full' });
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-net-bench-'));
  try {
    // Local copies (RAM inside the lab), so neither VMM reads them over 9p.
    const files = { kernel: join(dir, 'bzImage'), initrd: join(dir, 'initrd.cpio.gz') };
    copyFileSync(img.kernel, files.kernel);
    copyFileSync(img.initrd, files.initrd);
    withMinRttProbe(files.initrd, dir, log);
    checkKvmDebugfs(inLab, log);
    const samples: Sample[] = [];
    const runs: (() => Promise<Sample>)[] = [];
    // Over a TAP the server is in a namespace of its own; on a user network it is on this host's
    // loopback, where 5201 may be taken.
    const job: Job = { seconds, warmup, tsoRttLog, port: backend === 'tap' ? 5201 : await freePort('tcp', '127.0.0.1') };
    if (backend === 'tap') {
      for (let i = 0; i < rounds; i++) runs.push(() => runNodeKvm(files, 0x20, job), () => runQemu(files, job, inLab));
      runs.push(() => runNodeKvm(files, 0x10, job));
    } else {
      findPasst(); // a coded error naming the package, before any run
      for (let i = 0; i < rounds; i++) runs.push(() => runNodeKvmUser(files, 0x20, job), () => runQemuUser(files, job, inLab, 'slirp'), () => runQemuUser(files, job, inLab, 'passt'));
      runs.push(() => runNodeKvmUser(files, 0x10, job));
    }
    for (const [i, run] of runs.entries()) {
      const s: Sample = await run().catch((e: unknown) => ({ label: '?', error: String((e as Error)?.stack ?? e) }));
      samples.push(s);
      // One line per run as it ends, so a lab that stalls or times out still leaves its figures.
      log(`net: run ${i + 1}/${runs.length} ${s.label}: ${s.error ?? runLine(s, warmup)}`);
    }
    const where = inLab ? `nested lab (QEMU TCG + SVM, ${os.cpus().length} L1 CPU(s), both VMMs on kvm_amd in L1)` : 'this host';
    report(samples, seconds, warmup, tsoRttLog === undefined ? where : `${where}, guest net.ipv4.tcp_tso_rtt_log=${tsoRttLog} for both VMMs`, log,
      backend === 'user' ? USER_COMPARISON : TAP_COMPARISON);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
