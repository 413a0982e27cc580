// `node-kvm run`: boot a kernel (the default image when none is given) with the serial
// console on this terminal.
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWriteStream } from 'node:fs';
import { detectKernelFormat } from '../boot/index.js';
import { doctor } from '../doctor.js';
import { getDefaultImage } from '../images/index.js';
import { runInLab } from '../lab/run.js';
import { DEFAULT_CMDLINE } from '../machine/cmdline.js';
import { Machine, type MachineResult } from '../machine/index.js';
import type { NetBackend } from '../net/backend.js';
import { PcapWriter } from '../net/pcap.js';
import { L2Switch } from '../net/switch.js';
import { TapBackend } from '../net/tap.js';
import { userNet, type UserForward, type UserNetBackend } from '../net/user.js';
import { NodeKvmError } from '../errors.js';
import { resolveMemory } from '../machine/options.js';
import { createUserFile, readUserFile } from '../user-file.js';
import { UsageError, asUsage, intOption, parseCommandArgs, write, type CliCommand, type CliIo } from './args.js';
import { Deadline, DeadlineError } from './deadline.js';
import { parseShareArg, resolveShares } from '../devices/virtio/9p/share.js';
import { agentPortOptions } from '../testing/agent-port.js';
import { runOverAgent, takeRunCommand } from './run-agent.js';

const usage = `usage: node-kvm run [--kernel FILE] [--initrd FILE] [--append ARGS] [--cmdline ARGS]
                    [--memory 256M] [--cpus N] [--console stdio|file:PATH|none] [--timeout S]
                    [--net user[,fwd=tcp:H:G]...|tap:NAME|switch:NAME]... [--pcap FILE] [--bzimage]
                    [--lab] [--boot-protocol 32-bit|64-bit] [--share HOSTDIR[=TAG][:ro]]...
  Boots FILE (bzImage, vmlinux, Multiboot ELF) or, without --kernel, the default image
  (Debian kernel + busybox initramfs; built on first use, see \`node-kvm image\`).
  --append ARGS   added to the default command line ("${DEFAULT_CMDLINE}");
                  with the default image, nkvm.run="CMD" runs CMD over the guest agent: its
                  stdout/stderr come here apart, stdin is ours unless a terminal, and its exit
                  status is run's
  --cmdline ARGS  replaces the whole command line
  --bzimage       boot the default image's bzImage instead of its vmlinux
  --boot-protocol enter a bzImage through its 32-bit or 64-bit entry (default: 64-bit when
                  the kernel has one, as xloadflags says)
  --net SPEC      add an RTL8139 NIC (repeatable; the first is eth0):
                    user[,fwd=tcp:HOSTPORT:GUESTPORT]...  user-mode networking through passt,
                                 no root: DHCP, the host's loopback at 10.0.2.2, host ports
                                 forwarded to the guest (fwd=udp:… too; HOSTPORT 0 picks one);
                                 the guest's eth0 is configured by DHCP (nkvm.ip=dhcp)
                    tap:NAME     the TAP interface NAME (created if missing; needs CAP_NET_ADMIN)
                    switch:NAME  a port of the in-process L2 switch NAME (shared by every
                                 machine of this process that names it)
  --pcap FILE     record the first NIC's frames (both directions) to FILE (pcap, ns stamps;
                  not with a --lab re-run, whose files stay inside the lab)
  --share DIR[=TAG][:ro]
                  share the host directory DIR over virtio-9p (repeatable); TAG defaults to
                  DIR's last name (at most 31 bytes); :ro answers every change with EROFS. In
                  the guest: mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 TAG /mnt
                  (files it creates belong to the user running node-kvm). With --lab, the lab
                  sees this host's files read-only, so writes stay in the lab's RAM overlay.
  --lab           if this host's KVM cannot boot Linux (no VMX/SVM, kvm_pvm), run inside the
                  nested lab (QEMU TCG with emulated SVM); elsewhere boot directly
  With a terminal, the console is interactive: Ctrl-A x quits, Ctrl-A h helps.
  --timeout S     stop after S seconds, counted from the start (loading included): exit 124
  Files named here must be regular files (a FIFO or device is refused, never waited on).
  Exit status: 0 poweroff/reboot, the debug-exit code, 1 an error (the message ends [ERR_...]),
  2 triple fault or KVM internal error, 64 bad usage or an option out of range,
  70 a bug in node-kvm, 124 timeout.`;

const ESCAPE = 0x01; // Ctrl-A

const switches = new Map<string, L2Switch>();

/** The in-process L2 switch called `name`, created on first use (`--net switch:NAME`). */
export function sharedSwitch(name: string): L2Switch {
  let sw = switches.get(name);
  if (sw === undefined) switches.set(name, (sw = new L2Switch()));
  return sw;
}

export type NetSpec = { kind: 'tap' | 'switch'; name: string } | { kind: 'user'; forward: UserForward[] };

/** `user[,fwd=tcp:HOSTPORT:GUESTPORT]...` (HOSTPORT 0: a free port, printed at start). */
function parseUserSpec(spec: string): NetSpec {
  const forward: UserForward[] = [];
  for (const opt of spec.split(',').slice(1)) {
    const m = /^fwd=(tcp|udp):(\d{1,5}):(\d{1,5})$/.exec(opt);
    const host = Number(m?.[2]);
    const guest = Number(m?.[3]);
    if (m === null || host > 65535 || guest < 1 || guest > 65535) {
      throw new UsageError(`--net user takes fwd=tcp:HOSTPORT:GUESTPORT or fwd=udp:HOSTPORT:GUESTPORT (ports 0..65535, guest port ≥ 1; got ${JSON.stringify(opt)})`);
    }
    forward.push({ proto: m[1] as 'tcp' | 'udp', host, guest });
  }
  return { kind: 'user', forward };
}

/** Check `--net` specs without opening anything (usage errors before any side effect). */
export function parseNetSpecs(specs: readonly string[]): NetSpec[] {
  return specs.map((spec) => {
    if (spec === 'user' || spec.startsWith('user,')) return parseUserSpec(spec);
    const m = /^(tap|switch):(.+)$/.exec(spec);
    if (m === null) throw new UsageError(`--net must be user[,fwd=tcp:H:G]..., tap:NAME or switch:NAME (got ${JSON.stringify(spec)})`);
    const name = m[2]!;
    if (m[1] === 'tap' && (Buffer.byteLength(name) > 15 || /[/:\s]/.test(name))) {
      throw new UsageError(`--net tap:NAME needs an interface name of at most 15 bytes without '/', ':' or spaces (got ${JSON.stringify(name)})`);
    }
    return { kind: m[1] as 'tap' | 'switch', name };
  });
}

/** Open the backends for `--net`/`--pcap`; on failure, whatever was opened is closed again. */
function openBackends(specs: ReturnType<typeof parseNetSpecs>, pcapPath: string | undefined): { backends: NetBackend[]; close: () => void } {
  const opened: NetBackend[] = [];
  let pcap: PcapWriter | undefined;
  const close = (): void => {
    for (const b of opened) b.close();
    pcap?.close();
  };
  try {
    for (const s of specs) {
      opened.push(s.kind === 'user' ? userNet({ forward: s.forward })
        : s.kind === 'tap' ? TapBackend.open({ name: s.name }) : sharedSwitch(s.name).port(`cli-${process.pid}-${opened.length}`));
    }
    if (pcapPath !== undefined) {
      pcap = new PcapWriter(pcapPath);
      // The wrapper closes the backend it wraps: it replaces it in the list.
      opened[0] = pcap.wrap(opened[0]!);
    }
  } catch (e) {
    close();
    throw e;
  }
  return { backends: opened, close };
}

/** Machine.create with its option-range errors (cpus above KVM's limit...) as usage errors. */
async function asUsageAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    return asUsage(() => { throw e; });
  }
}

function timedOut(io: CliIo, timeoutS: number | undefined, kernel: string | undefined): number {
  write(io.stderr, `\nnode-kvm run: timed out after ${timeoutS} s${kernel === undefined ? '' : ` (${basename(kernel)})`} [ERR_TIMEOUT]`);
  return 124;
}

function exitStatus(r: MachineResult): number {
  switch (r.reason) {
    case 'poweroff':
    case 'reboot':
    case 'stopped':
      return 0;
    case 'debug-exit':
      return r.code & 0xff;
    default:
      return 2;
  }
}

/** Raw-mode terminal input with a QEMU-like Ctrl-A escape. */
function attachTerminal(m: Machine, io: CliIo, quit: () => void): () => void {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    stdin.pipe(m.console);
    return () => stdin.unpipe(m.console);
  }
  stdin.setRawMode(true);
  stdin.resume();
  let escaped = false;
  const onData = (d: Buffer): void => {
    const out: number[] = [];
    for (const b of d) {
      if (escaped) {
        escaped = false;
        if (b === 0x78 /* x */) return quit();
        if (b === 0x68 /* h */) {
          write(io.stderr, '\r\nC-a h    this help\r\nC-a x    quit (stops the VM)\r\nC-a C-a  send C-a\r');
          continue;
        }
        out.push(b);
      } else if (b === ESCAPE) {
        escaped = true;
      } else {
        out.push(b);
      }
    }
    if (out.length > 0) m.console.write(Buffer.from(out));
  };
  stdin.on('data', onData);
  return () => {
    stdin.off('data', onData);
    stdin.setRawMode(false);
    stdin.pause();
  };
}

export const command: CliCommand = {
  summary: 'boot a kernel (default: the Debian guest image) with its console here',
  usage,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      append: { type: 'string' },
      cmdline: { type: 'string' },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      console: { type: 'string' },
      timeout: { type: 'string' },
      bzimage: { type: 'boolean' },
      lab: { type: 'boolean' },
      net: { type: 'string', multiple: true },
      pcap: { type: 'string' },
      'boot-protocol': { type: 'string' },
      share: { type: 'string', multiple: true },
    });
    const bootProtocol = values['boot-protocol'];
    if (bootProtocol !== undefined && bootProtocol !== '32-bit' && bootProtocol !== '64-bit') {
      throw new UsageError(`--boot-protocol must be 32-bit or 64-bit (got ${bootProtocol})`);
    }
    const cpus = intOption(values.cpus, '--cpus', 1, 1024) ?? 1;
    const timeoutS = intOption(values.timeout, '--timeout', 1, 7 * 24 * 3600);
    for (const k of ['kernel', 'initrd', 'pcap'] as const) {
      if (values[k] === '') throw new UsageError(`--${k} needs a path (got an empty one)`);
    }
    const memory = asUsage(() => resolveMemory(values.memory ?? '256M'));
    const consoleSpec = values.console ?? 'stdio';
    if (!/^(stdio|none|file:.+)$/.test(consoleSpec)) throw new UsageError(`--console must be stdio, none or file:PATH (got ${consoleSpec})`);
    if (values.initrd !== undefined && values.kernel === undefined) throw new UsageError('--initrd needs --kernel');
    const netSpecs = parseNetSpecs(values.net ?? []);
    const shares = (values.share ?? []).map((a) => {
      try {
        return parseShareArg(a);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    });
    // Checked here, before any lab or boot: a missing directory or a tag used twice is a usage
    // error with its code, whatever this host can boot.
    resolveShares(shares);
    if (values.pcap !== undefined && netSpecs.length === 0) throw new UsageError('--pcap needs a NIC (--net user, tap:NAME or switch:NAME)');

    if (values.lab && process.env.NODE_KVM_LAB !== '1' && !(await doctor()).canBootLinuxDirectly) {
      if (values.pcap !== undefined) {
        throw new UsageError('--pcap with --lab: the lab\'s file system is a RAM overlay, so the capture would not reach this host; ' +
          'run the capture and its reader inside the lab instead (node-kvm lab -- sh -c \'node-kvm run --pcap F ...; tshark -r F\')');
      }
      const bin = fileURLToPath(new URL('../../../bin/node-kvm.js', import.meta.url));
      const inner = argv.filter((a) => a !== '--lab');
      const r = await runInLab({ command: [process.execPath, bin, 'run', ...inner], stdout: io.stdout, stderr: io.stderr,
        timeoutMs: timeoutS === undefined ? undefined : (timeoutS + 120) * 1000 });
      if (r.error) write(io.stderr, `node-kvm run --lab: ${r.error}`);
      return r.exitCode;
    }

    // --timeout counts from here: loading the image and the kernel, and creating the machine, too.
    const deadline = new Deadline(timeoutS);
    // Everything opened for this run, closed in reverse order on every path out.
    const cleanups: Array<() => void | Promise<void>> = [];
    let kernel = values.kernel;
    let hasAgent = false;
    try {
      let initrd = values.initrd;
      if (kernel === undefined) {
        const img = await deadline.race(getDefaultImage({ build: true, verify: process.env.NODE_KVM_LAB === '1' ? 'size' : 'full',
          log: (l) => write(io.stderr, `node-kvm: ${l}`) }));
        kernel = values.bzimage ? img.kernel : img.vmlinux;
        initrd = img.initrd;
        hasAgent = img.manifest.agent !== undefined;
      }
      const kernelBytes = readUserFile(kernel, 'kernel');
      const initrdBytes = initrd === undefined ? undefined : readUserFile(initrd, 'initrd');
      const format = detectKernelFormat(kernelBytes);
      if ((format === 'bzimage' || format === 'elf64' || format === 'pvh') && process.env.NODE_KVM_LAB !== '1') {
        const report = await deadline.race(doctor());
        if (!report.canBootLinuxDirectly) {
          throw new NodeKvmError('ERR_KVM_CANNOT_BOOT_LINUX', `this host's KVM (${report.kvm.backends.join(', ') || 'none'}) cannot boot a Linux kernel directly.\n` +
            '  Use the nested lab: `node-kvm run --lab ...` (or `node-kvm lab -- node-kvm run ...`); see `node-kvm doctor`.');
        }
      }
      const asked = values.cmdline ?? (values.append ? `${DEFAULT_CMDLINE} ${values.append}` : DEFAULT_CMDLINE);
      // nkvm.run="CMD" with the default image: CMD runs over the guest agent, not /init's console.
      const agentRun = hasAgent ? takeRunCommand(asked) : undefined;
      let cmdline = agentRun?.cmdline ?? asked;
      // A user network hands out addresses by DHCP: the default image's /init asks for one.
      if (netSpecs[0]?.kind === 'user' && values.cmdline === undefined && !/(^|\s)nkvm\.ip=/.test(cmdline)) cmdline += ' nkvm.ip=dhcp';
      // The user's files first (console log, capture), so a bad path fails before any VM exists.
      let out: NodeJS.WritableStream | undefined;
      let piped = false;
      if (consoleSpec === 'stdio') out = io.stdout;
      else if (consoleSpec.startsWith('file:')) {
        const file = createWriteStream('', { fd: createUserFile(consoleSpec.slice(5), 'console file') });
        const closed = new Promise<void>((resolve) => file.once('close', resolve));
        // A failed write (disk full) loses console output, not the run: the guest keeps going.
        file.on('error', (e) => write(io.stderr, `node-kvm run: console file: ${e.message}`));
        // Once piped, the console's end ends the file after the last byte; else end it here.
        cleanups.push(async () => { if (!piped) file.end(); await closed; });
        out = file;
      }
      const net = openBackends(netSpecs, values.pcap);
      cleanups.push(() => net.close());
      const m = await deadline.race(asUsageAsync(() => Machine.create({ kernel: kernelBytes, initrd: initrdBytes, cmdline, memory, cpus,
        ...(bootProtocol !== undefined ? { bootProtocol } : {}),
        net: net.backends.map((backend) => ({ backend })), shares, ...(agentRun ? agentPortOptions() : {}) })), (late) => void late.close());
      cleanups.push(() => m.close());
      for (const b of net.backends) {
        for (const f of (b as Partial<UserNetBackend>).forwards ?? []) write(io.stderr, `node-kvm: forwarding ${f.proto} ${f.address}:${f.host} to the guest's port ${f.guest}`);
      }
      m.on('net-error', ({ nic, error }: { nic: number; error: Error }) => write(io.stderr, `\nnode-kvm run: NIC ${nic}: ${error.message}`));
      if (out) {
        m.console.pipe(out, { end: consoleSpec !== 'stdio' });
        piped = true;
      }
      // Over the agent, a piped stdin is the command's, not the console's.
      const commandStdin = agentRun !== undefined && !process.stdin.isTTY ? process.stdin : undefined;
      const detach = consoleSpec === 'stdio' && commandStdin === undefined ? attachTerminal(m, io, () => void m.stop()) : () => {};
      cleanups.push(detach);
      deadline.onExpire(() => void m.stop());
      if (deadline.expired) return timedOut(io, timeoutS, kernel);
      m.start();
      if (agentRun !== undefined) {
        let status: number;
        try {
          status = await runOverAgent(m, agentRun.command, io, commandStdin);
        } catch (e) {
          if (deadline.expired) return timedOut(io, timeoutS, kernel);
          write(io.stderr, `\nnode-kvm run: ${(e as Error).message}`);
          status = 2;
        }
        if (deadline.expired) return timedOut(io, timeoutS, kernel);
        await m.stop();
        return status;
      }
      const r = await m.wait();
      if (deadline.expired) return timedOut(io, timeoutS, kernel);
      if (r.reason === 'shutdown' || r.reason === 'error') write(io.stderr, `\nnode-kvm run: guest ${r.reason}: ${r.detail ?? ''}`);
      return exitStatus(r);
    } catch (e) {
      if (e instanceof DeadlineError) return timedOut(io, timeoutS, kernel);
      throw e;
    } finally {
      deadline.clear();
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch {
          // Closing is best effort here: the run's own outcome is what gets reported.
        }
      }
    }
  },
};
