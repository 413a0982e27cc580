// Templates and forks: boot one guest, run `setup` in it, snapshot it, and hand out any number of
// TestVms restored from that snapshot. A fork's RAM is the snapshot's memfd (or file) mapped
// copy-on-write (Machine.fromSnapshot), so it starts in the time of a restore, not a boot, and
// costs only the pages its guest writes. After the restore the fork's guest takes its own clock,
// MAC and address (fork-guest.ts) before fork() resolves.
import { NodeKvmError } from '../errors.js';
import { Machine, type ShareOverride } from '../machine/index.js';
import { loadSnapshot, type MachineSnapshot } from '../machine/snapshot.js';
import type { NetBackend } from '../net/backend.js';
import { NullBackend } from '../net/backend.js';
import { userNet, type UserNetBackend } from '../net/user.js';
import type { Image } from '../images/index.js';
import { checkOptions, keysOf } from '../options-check.js';
import { checkForkAddress, clockLagMs, forkScript, type ForkAddress } from './fork-guest.js';
import { snapshotTrace } from '../snapshot-trace.js';
import { checkForkMemory, memAvailable } from './fork-memory.js';
import { openAgentPort } from './agent-port.js';
import { adoptMachine, bootVm, resolveImage, uniqueMac, type BootVmOptions, type CleanupHost, type TestVm } from './vm.js';

/** Options of vmTemplate(): bootVm's, with NICs described for forks, plus `setup`. */
export interface VmTemplateOptions extends Omit<BootVmOptions, 'net' | 't' | 'agent'> {
  /**
   * NICs every fork gets. 'user': one NIC on a user network; each fork gets its own user
   * network (a fresh passt) and takes its address by DHCP. A number: that many NICs, unplugged
   * in the template; each fork() is given their backends (a switch port…) and addresses.
   */
  net?: 'user' | number;
  /** Runs in the booted template before the snapshot: install files, start daemons, warm caches. */
  setup?: (vm: TestVm) => Promise<unknown> | void;
}

/** One NIC of a fork: its backend and how its guest gets an address. */
export interface ForkNet {
  /** Where the NIC's frames go (a switch port, a TAP, a LinkShaper…). */
  backend: NetBackend;
  /** 'dhcp', 'none' (default for a non-user NIC) or an IPv4 address with prefix, e.g. '10.0.0.5/24'. */
  ip?: ForkAddress;
  /** The fork's MAC (default: one unique in this process). */
  mac?: string;
}

/** Options of VmTemplate.fork(). */
export interface ForkOptions {
  /** Name used in errors and artifact files (default <template>-fork<N>). */
  name?: string;
  /**
   * One entry per template NIC, in order. Required for the NICs of a template made with a NIC
   * count; for 'user' NICs the default is a fresh user network with DHCP.
   */
  net?: Array<ForkNet | NetBackend>;
  /**
   * Host directories for the template's shares in this fork, by tag (default: each share
   * exports the template's directory). The guest's mounts and open files of that share find
   * their files again by path in the fork's directory; a file missing there answers ESTALE.
   */
  shares?: ShareOverride[];
  /** Milliseconds for the restore and the guest's clock/network set-up (default 60 s). */
  timeout?: number;
  /** Register close() with this test context's after() hook. */
  t?: CleanupHost;
}

/** What VmTemplate.counters counts. */
export interface TemplateCounters {
  /** Forks restored from the template. */
  forks: number;
  /** Of those, forks restored into the machine the template had built ahead (no KVM set-up in their time). */
  intoSpare: number;
}

/** A template's setup() threw. Code: `ERR_TEMPLATE_SETUP`; the template VM was stopped. */
export class TemplateSetupError extends NodeKvmError {
  constructor(
    message: string,
    /** The template VM's last console output. */
    readonly tail: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_TEMPLATE_SETUP', `${message}\nconsole tail:\n${tail}`, options);
  }
}

/** What a template file records beside the snapshot, checked before a fork from it. */
interface TemplateMeta {
  /** Of this record; bump when its meaning changes. */
  version: 1;
  image: { name: string; kernel: 'vmlinux' | 'bzImage'; kernelSha256: string; initrdSha256: string };
  nics: Array<'user' | 'port'>;
  /** The template guest's wall clock (ms since 1970) when its snapshot was taken. */
  guestClockAtCaptureMs: number;
  /**
   * The guest agent was synced and idle at the snapshot: forks use it at once over the agent's
   * port. Absent in files saved before forks had it: those forks use the serial console.
   */
  agent?: boolean;
}

const TEMPLATE_META_VERSION = 1;
const DEFAULT_FORK_TIMEOUT = 60_000;

/** Guest RAM of the live forks of every template in this process (the admission check's worst case). */
let liveRam = 0;
let liveForks = 0;

function imageMeta(image: Image, bzImage: boolean): TemplateMeta['image'] {
  const f = image.manifest.files;
  const kernel = bzImage ? 'bzImage' : 'vmlinux';
  const k = f[kernel]?.sha256;
  const i = f['initramfs.cpio.gz']?.sha256;
  if (k === undefined || i === undefined) throw new NodeKvmError('ERR_IMAGE_CORRUPT', `image ${image.name}: its manifest lacks the ${kernel} or initramfs checksum`);
  return { name: image.name, kernel, kernelSha256: k, initrdSha256: i };
}

/**
 * A booted, set-up guest kept as a snapshot: fork() returns TestVms restored from it, many at
 * once, each with its own clock, MAC and address. close() (or `await using`) releases the
 * snapshot; forks already made run on.
 */
export class VmTemplate implements AsyncDisposable {
  private snap: MachineSnapshot | undefined;
  private forks = 0;
  /**
   * The next fork's machine, built ahead (Machine.snapshotShell): a fork then pays only the
   * restore, not the KVM and device set-up, which in the nested lab is most of fork()'s time.
   * Kept for templates without NICs (a fork's NICs need their own backends) and built when
   * vmTemplate() made the template and when a fork closes, so it does not compete with a fork's
   * start for the CPU.
   */
  private spare: Promise<Machine | undefined> | undefined;
  /** Forks made, and how many of them were restored into a machine built ahead. */
  readonly counters: TemplateCounters = { forks: 0, intoSpare: 0 };

  /** @internal use vmTemplate() or loadTemplate() */
  constructor(
    /** Name used in errors and fork names. */
    readonly name: string,
    snap: MachineSnapshot,
    private readonly meta: TemplateMeta,
  ) {
    this.snap = snap;
  }

  /**
   * @internal Start building the next fork's machine, if none is built or being built. Called
   * for a template just made (its machine is known to build) and when a fork closes.
   */
  prepareSpare(): void {
    const snap = this.snap;
    if (snap === undefined || this.spare !== undefined || snap.config.nics.length > 0) return;
    // A failure here is the next fork's to report: it then builds its own machine and meets it.
    this.spare = Machine.snapshotShell(snap).catch(() => undefined);
  }

  /** The spare machine for a fork with the template's own shares, or undefined. */
  private async takeSpare(opts: ForkOptions): Promise<Machine | undefined> {
    if (opts.shares !== undefined) return undefined;
    const spare = this.spare;
    this.spare = undefined;
    return spare;
  }

  /** Guest RAM of each fork, in bytes. */
  get memory(): number {
    return this.open('read').config.memory;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.snap === undefined;
  }

  /** The NICs each fork gets, in order: 'user' networks or ports given to fork(). */
  get nics(): ReadonlyArray<'user' | 'port'> {
    return this.meta.nics;
  }

  private open(what: string): MachineSnapshot {
    if (this.snap === undefined) throw new NodeKvmError('ERR_TEMPLATE_CLOSED', `cannot ${what} template ${this.name}: it is closed`);
    return this.snap;
  }

  /** Resolve each template NIC's backend, MAC and address from `opts.net`. */
  private nets(opts: ForkOptions): { backends: NetBackend[]; owned: UserNetBackend[]; nics: Array<{ mac: string; address: ForkAddress }> } {
    const given = opts.net ?? [];
    if (!Array.isArray(given)) throw new NodeKvmError('ERR_INVALID_NET', 'fork: net must be an array (one entry per template NIC)');
    if (given.length > this.meta.nics.length) {
      throw new NodeKvmError('ERR_INVALID_NET', `fork: template ${this.name} has ${this.meta.nics.length} NIC(s), net gives ${given.length}`);
    }
    const entries = given.map((g, i): ForkNet => {
      if (g !== null && typeof g === 'object' && 'backend' in g) {
        checkOptions(`fork: net[${i}]`, g, keysOf<ForkNet>({ backend: true, ip: true, mac: true }));
        return g;
      }
      return { backend: g as NetBackend };
    });
    entries.forEach((e, i) => {
      if (e.backend === null || typeof e.backend !== 'object' || typeof e.backend.send !== 'function') {
        throw new NodeKvmError('ERR_INVALID_NET', `fork: net[${i}] is not a NetBackend`);
      }
      if (e.ip !== undefined) checkForkAddress(e.ip, `fork: net[${i}]`);
      // The MAC goes into the guest's shell script: only the plain form is accepted.
      if (e.mac !== undefined && (typeof e.mac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(e.mac))) {
        throw new NodeKvmError('ERR_INVALID_MAC', `fork: net[${i}].mac must be six bytes written as aa:bb:cc:dd:ee:ff, got ${JSON.stringify(e.mac)}`);
      }
    });
    const owned: UserNetBackend[] = [];
    const backends: NetBackend[] = [];
    const nics = this.meta.nics.map((kind, i) => {
      const e = entries[i];
      if (e === undefined && kind !== 'user') {
        throw new NodeKvmError('ERR_INVALID_NET', `fork: template ${this.name}'s NIC ${i} needs a backend (net[${i}]: a switch port, a TAP…)`);
      }
      let backend = e?.backend;
      if (backend === undefined) owned.push((backend = userNet()) as UserNetBackend);
      backends.push(backend);
      return { mac: e?.mac ?? uniqueMac(), address: e?.ip ?? (kind === 'user' && e === undefined ? 'dhcp' : 'none') };
    });
    return { backends, owned, nics };
  }

  /**
   * A new TestVm restored from the template, its guest's clock set to the host's and each NIC
   * given its own MAC and address. Refused with ERR_TEMPLATE_CLOSED after close() and with
   * ERR_FORK_MEMORY when its worst case does not fit in host memory.
   */
  async fork(opts: ForkOptions = {}): Promise<TestVm> {
    checkOptions('fork', opts, keysOf<ForkOptions>({ name: true, net: true, shares: true, timeout: true, t: true }));
    const snap = this.open('fork');
    const ram = snap.config.memory;
    const { backends, owned, nics } = this.nets(opts);
    const name = opts.name ?? `${this.name}-fork${++this.forks}`;
    const timeout = opts.timeout ?? DEFAULT_FORK_TIMEOUT;
    try {
      checkForkMemory({ ram, liveRam, liveForks, available: memAvailable(), template: this.name });
    } catch (e) {
      for (const b of owned) b.close();
      throw e;
    }
    // Reserved before the first await: forks started together are admitted one by one.
    liveRam += ram;
    liveForks++;
    const release = (): void => {
      liveRam -= ram;
      liveForks--;
    };
    let machine: Machine;
    const t0 = performance.now();
    let restoredAt: number;
    let spare: Machine | undefined;
    try {
      spare = await this.takeSpare(opts);
      machine = spare !== undefined
        ? await Machine.restoreShell(spare, snap)
        : await Machine.fromSnapshot(snap, { net: backends.map((backend) => ({ backend })), ...(opts.shares !== undefined ? { shares: opts.shares } : {}) });
      restoredAt = Date.now();
      this.counters.forks++;
      if (spare !== undefined) this.counters.intoSpare++;
    } catch (e) {
      release();
      for (const b of owned) b.close();
      throw e;
    }
    const vm = adoptMachine(machine, name, owned);
    vm.onClosed.push(release, () => this.prepareSpare());
    opts.t?.after(() => vm.close());
    try {
      // The restored agent said HELLO to the template's host long ago and waits for requests.
      if (this.meta.agent === true) await vm.attachAgent(() => openAgentPort(machine), timeout, true);
      machine.start();
      const t1 = performance.now();
      const lagMs = clockLagMs(this.meta.guestClockAtCaptureMs, restoredAt);
      // The agent steps the clock itself: no process to start in a guest whose pages are all cold.
      const clockDone = await vm.advanceClockByAgent(lagMs, timeout);
      if (!clockDone || nics.length > 0) {
        const script = forkScript({ ...(clockDone ? {} : { lagMs }), nics: nics.map((n, i) => ({ iface: `eth${i}`, ...n })) });
        const r = await vm.exec(script, { timeout });
        if (r.exitCode !== 0) throw new Error(`the guest's set-up script exited with ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
      }
      snapshotTrace(`fork ${name}: ${spare !== undefined ? 'restore into the spare machine' : 'fromSnapshot'} ${(t1 - t0).toFixed(1)} ms, guest clock/net set-up ${(performance.now() - t1).toFixed(1)} ms (clock lag ${lagMs.toFixed(0)} ms, ${clockDone ? 'agent' : 'script'})`);
    } catch (e) {
      const tail = vm.tail();
      await vm.close();
      throw new NodeKvmError('ERR_FORK_FAILED', `fork ${name} of template ${this.name}: ${(e as Error).message.split('\n')[0]}\nconsole tail:\n${tail}`, { cause: e });
    }
    return vm;
  }

  /**
   * Write the template to `path` (the snapshot file format, plus which image it was made from):
   * loadTemplate(path) forks it in another process.
   */
  save(path: string): void {
    this.open('save').save(path, { template: this.meta });
  }

  /** Release the snapshot. Forks made from it run on; fork() and save() then throw ERR_TEMPLATE_CLOSED. */
  async close(): Promise<void> {
    this.snap?.close();
    this.snap = undefined;
    const spare = this.spare;
    this.spare = undefined;
    await (await spare)?.close();
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

let templateCount = 0;

/**
 * Boot a guest, run `setup` in it and keep it as a snapshot to fork from. A setup that throws
 * rejects with ERR_TEMPLATE_SETUP (with the console tail); nothing is left running.
 */
export async function vmTemplate(opts: VmTemplateOptions = {}): Promise<VmTemplate> {
  checkOptions('vmTemplate', opts, keysOf<VmTemplateOptions>({
    name: true, image: true, bzImage: true, memory: true, cpus: true, net: true, files: true, cmdline: true, verbose: true, timeout: true, setup: true, shares: true,
  }));
  const { setup, net, ...boot } = opts;
  if (setup !== undefined && typeof setup !== 'function') throw new NodeKvmError('ERR_INVALID_ARG', 'vmTemplate: setup must be a function');
  if (net !== undefined && net !== 'user' && !(Number.isInteger(net) && net >= 0 && net <= 8)) {
    throw new NodeKvmError('ERR_INVALID_NET', `vmTemplate: net must be 'user' or a NIC count from 0 to 8, got ${JSON.stringify(net)}`);
  }
  const name = opts.name ?? `template${++templateCount}`;
  const image = await resolveImage(opts.image);
  const nics: TemplateMeta['nics'] = net === 'user' ? ['user'] : Array.from({ length: net ?? 0 }, () => 'port' as const);
  // Unplugged NICs boot without an address: each fork is given its own.
  const cmdline = net === 'user' || (net ?? 0) === 0 || /(^|\s)nkvm\.ip=/.test(opts.cmdline ?? '') ? opts.cmdline : `${opts.cmdline ?? ''} nkvm.ip=none`.trim();
  const parked = net === 'user' ? [] : nics.map(() => new NullBackend());
  const vm = await bootVm({ ...boot, name, image, cmdline, net: net === 'user' ? 'user' : parked.map((backend) => ({ backend })) });
  try {
    try {
      await setup?.(vm);
    } catch (e) {
      throw new TemplateSetupError(`template ${name}: setup threw: ${(e as Error)?.message?.split('\n')[0] ?? String(e)}`, vm.tail(), { cause: e });
    }
    // Its last request (the clock reading) has ended, so the agent is idle at the snapshot.
    const agent = vm.channel === 'agent';
    const guestClockAtCaptureMs = await readGuestClockAtCapture(vm);
    const snap = await vm.machine.snapshot();
    const tpl = new VmTemplate(name, snap, { version: TEMPLATE_META_VERSION, image: imageMeta(image, opts.bzImage === true), nics, guestClockAtCaptureMs, agent });
    tpl.prepareSpare();
    return tpl;
  } finally {
    await vm.close();
    for (const b of parked) b.close();
  }
}

/**
 * Pause `vm` and return its guest's wall clock at that moment (ms). The guest reads its clock
 * (adjtimex: microseconds) in an exec; the host takes the middle of the exec as the moment of
 * the reading and adds the host time that passed until the pause (kvmclock, which the guest's
 * clock follows, is read by the capture right after it). The fastest of three readings is used.
 */
async function readGuestClockAtCapture(vm: TestVm): Promise<number> {
  let best: { rtt: number; offset: number } | undefined;
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const r = await vm.execOk('adjtimex');
    const t1 = Date.now();
    const sec = Number(/time\.tv_sec:\s+(\d+)/.exec(r.stdout)?.[1]);
    const usec = Number(/time\.tv_usec:\s+(\d+)/.exec(r.stdout)?.[1]);
    if (!Number.isFinite(sec) || !Number.isFinite(usec)) throw new NodeKvmError('ERR_EXEC_PROTOCOL', `template: cannot read the guest's clock from adjtimex: ${r.stdout.slice(0, 200)}`);
    const offset = sec * 1000 + usec / 1000 - (t0 + t1) / 2;
    if (best === undefined || t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset };
  }
  await vm.machine.pause();
  return Date.now() + best!.offset;
}

/** Options of loadTemplate(). */
export interface LoadTemplateOptions {
  /** The image this process boots (default: the default image); the file must have been made from it. */
  image?: Image | string;
  /** Name used in errors and fork names (default: the file name). */
  name?: string;
  /** 'state' (default) checks the file's structure and state checksums; 'full' also hashes RAM. */
  verify?: 'full' | 'state';
}

/**
 * Open a template saved with VmTemplate.save(), to fork in this process. Refused before any VM
 * exists: ERR_SNAPSHOT_VERSION (another format version), ERR_SNAPSHOT_CORRUPT, or
 * ERR_TEMPLATE_MISMATCH (not a template, or made from another kernel or image than `image`).
 */
export async function loadTemplate(path: string, opts: LoadTemplateOptions = {}): Promise<VmTemplate> {
  checkOptions('loadTemplate', opts, keysOf<LoadTemplateOptions>({ image: true, name: true, verify: true }));
  if (typeof path !== 'string' || path === '') throw new NodeKvmError('ERR_INVALID_ARG', 'loadTemplate: path must be a non-empty string');
  const image = await resolveImage(opts.image);
  const snap = loadSnapshot(path, { verify: opts.verify ?? 'state' });
  try {
    const meta = (snap.fileMeta as { template?: TemplateMeta } | undefined)?.template;
    if (meta === undefined || meta === null || typeof meta !== 'object' || meta.version !== TEMPLATE_META_VERSION || !Array.isArray(meta.nics)) {
      throw new NodeKvmError('ERR_TEMPLATE_MISMATCH', `${path} is a machine snapshot but not a template of this version (save one with VmTemplate.save())`);
    }
    const want = imageMeta(image, meta.image?.kernel === 'bzImage');
    for (const [key, label] of [['kernelSha256', 'kernel'], ['initrdSha256', 'initramfs']] as const) {
      if (meta.image?.[key] !== want[key]) {
        throw new NodeKvmError('ERR_TEMPLATE_MISMATCH',
          `template ${path} was made from image ${meta.image?.name ?? '?'} with another ${label} (${String(meta.image?.[key]).slice(0, 12)}…) than image ${image.name} here (${want[key].slice(0, 12)}…): make the template again`);
      }
    }
    if (meta.nics.length !== snap.config.nics.length) throw new NodeKvmError('ERR_TEMPLATE_MISMATCH', `template ${path}: its NIC list does not match its machine`);
    return new VmTemplate(opts.name ?? path.split('/').pop()!.replace(/\.[^.]*$/, ''), snap, meta);
  } catch (e) {
    snap.close();
    throw e;
  }
}
