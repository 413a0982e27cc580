// `node-kvm run`: boot a kernel (the default image when none is given) with the serial
// console on this terminal.
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
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
import { parseShareArg, resolveShares } from '../devices/virtio/9p/share.js';
import { UsageError, intOption, parseCommandArgs, write, type CliCommand, type CliIo } from './args.js';

const usage = `usage: node-kvm run [--kernel FILE] [--initrd FILE] [--append ARGS] [--cmdline ARGS]
                    [--memory 256M] [--cpus N] [--console stdio|file:PATH|none] [--timeout S]
                    [--net tap:NAME|switch:NAME]... [--pcap FILE] [--bzimage] [--lab]
                    [--share HOSTDIR[=TAG][:ro]]...
  Boots FILE (bzImage, vmlinux, Multiboot ELF) or, without --kernel, the default image
  (Debian kernel + busybox initramfs; built on first use, see \`node-kvm image\`).
  --append ARGS   added to the default command line ("${DEFAULT_CMDLINE}")
  --cmdline ARGS  replaces the whole command line
  --bzimage       boot the default image's bzImage instead of its vmlinux
  --net SPEC      add an RTL8139 NIC (repeatable; the first is eth0):
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
  Exit status: 0 poweroff/reboot, the debug-exit code, 2 triple fault or internal error,
  124 timeout, 64 bad usage.`;

const ESCAPE = 0x01; // Ctrl-A

const switches = new Map<string, L2Switch>();

/** The in-process L2 switch called `name`, created on first use (`--net switch:NAME`). */
export function sharedSwitch(name: string): L2Switch {
  let sw = switches.get(name);
  if (sw === undefined) switches.set(name, (sw = new L2Switch()));
  return sw;
}

/** Check `--net` specs without opening anything (usage errors before any side effect). */
export function parseNetSpecs(specs: readonly string[]): Array<{ kind: 'tap' | 'switch'; name: string }> {
  return specs.map((spec) => {
    const m = /^(tap|switch):(.+)$/.exec(spec);
    if (m === null) throw new UsageError(`--net must be tap:NAME or switch:NAME (got ${JSON.stringify(spec)})`);
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
    for (const s of specs) opened.push(s.kind === 'tap' ? TapBackend.open({ name: s.name }) : sharedSwitch(s.name).port(`cli-${process.pid}-${opened.length}`));
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
      share: { type: 'string', multiple: true },
    });
    const cpus = intOption(values.cpus, '--cpus', 1, 1024) ?? 1;
    const timeoutS = intOption(values.timeout, '--timeout', 1, 7 * 24 * 3600);
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
    if (values.pcap !== undefined && netSpecs.length === 0) throw new UsageError('--pcap needs a NIC (--net tap:NAME or switch:NAME)');

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

    let kernel = values.kernel;
    let initrd = values.initrd;
    if (kernel === undefined) {
      const img = await getDefaultImage({ build: true, verify: process.env.NODE_KVM_LAB === '1' ? 'size' : 'full',
        log: (l) => write(io.stderr, `node-kvm: ${l}`) });
      kernel = values.bzimage ? img.kernel : img.vmlinux;
      initrd = img.initrd;
    }
    const kernelBytes = readFileSync(kernel);
    const format = detectKernelFormat(kernelBytes);
    if ((format === 'bzimage' || format === 'elf64' || format === 'pvh') && process.env.NODE_KVM_LAB !== '1') {
      const report = await doctor();
      if (!report.canBootLinuxDirectly) {
        write(io.stderr, `node-kvm run: this host's KVM (${report.kvm.backends.join(', ') || 'none'}) cannot boot a Linux kernel directly.\n` +
          '  Use the nested lab: `node-kvm run --lab ...` (or `node-kvm lab -- node-kvm run ...`); see `node-kvm doctor`.');
        return 1;
      }
    }
    const cmdline = values.cmdline ?? (values.append ? `${DEFAULT_CMDLINE} ${values.append}` : DEFAULT_CMDLINE);
    const net = openBackends(netSpecs, values.pcap);
    let m: Machine;
    try {
      m = await Machine.create({ kernel: kernelBytes, initrd, cmdline, memory: values.memory ?? '256M', cpus,
        net: net.backends.map((backend) => ({ backend })), shares });
    } catch (e) {
      net.close();
      throw e;
    }
    let out: NodeJS.WritableStream | undefined;
    if (consoleSpec === 'stdio') out = io.stdout;
    else if (consoleSpec.startsWith('file:')) out = (await open(consoleSpec.slice(5), 'w')).createWriteStream();
    if (out) m.console.pipe(out, { end: consoleSpec !== 'stdio' });
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const detach = consoleSpec === 'stdio' ? attachTerminal(m, io, () => void m.stop()) : () => {};
    try {
      if (timeoutS !== undefined) timer = setTimeout(() => { timedOut = true; void m.stop(); }, timeoutS * 1000);
      m.start();
      const r = await m.wait();
      if (timedOut) {
        write(io.stderr, `\nnode-kvm run: timed out after ${timeoutS} s (${basename(kernel)})`);
        return 124;
      }
      if (r.reason === 'shutdown' || r.reason === 'error') write(io.stderr, `\nnode-kvm run: guest ${r.reason}: ${r.detail ?? ''}`);
      return exitStatus(r);
    } finally {
      clearTimeout(timer);
      detach();
      await m.close();
      net.close();
    }
  },
};
