// `node-kvm exec -- CMD ARGS…`: run a host command under a guest kernel (see
// lib/testing/exec-in-vm.ts), its output streamed here, its exit status ours.
import { doctor } from '../doctor.js';
import { runInLab } from '../lab/run.js';
import { execInVm } from '../testing/exec-in-vm.js';
import { resolveShares } from '../devices/virtio/9p/share.js';
import { fileURLToPath } from 'node:url';
import { UsageError, intOption, parseCommandArgs, write, type CliCommand } from './args.js';

const usage = `usage: node-kvm exec [--kernel FILE --initrd FILE] [--memory 1G] [--cpus N] [--rw DIR]... [--timeout S] [--lab] -- CMD [ARGS...]
  Boots a guest kernel (default: the default image's) with this host's root filesystem
  shared read-only (virtio-9p) under a copy-on-write overlay in guest RAM, the current
  directory and every --rw DIR shared writable at the same paths, and runs CMD there as your
  uid/gid with PATH, HOME, USER, LANG, TERM passed on. CMD's stdout and stderr stream here;
  the exit status is CMD's (125 when the guest could not set it up, 124 on --timeout,
  1 with ERR_EXEC_NO_STATUS when the guest ended before CMD did).
  --lab   if this host's KVM cannot boot Linux, run inside the nested lab (whose view of this
          host's files is read-only: there, writes stay in the lab's RAM overlay)`;

export const command: CliCommand = {
  summary: 'run a host command under a guest kernel (host root read-only + overlay, cwd writable)',
  usage,
  async run(argv, io) {
    const dd = argv.indexOf('--');
    if (dd < 0 || dd === argv.length - 1) throw new UsageError('the command goes after --');
    const cmd = argv.slice(dd + 1);
    const { values } = parseCommandArgs(argv.slice(0, dd), {
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      memory: { type: 'string' },
      cpus: { type: 'string' },
      rw: { type: 'string', multiple: true },
      timeout: { type: 'string' },
      lab: { type: 'boolean' },
    });
    if ((values.kernel === undefined) !== (values.initrd === undefined)) throw new UsageError('--kernel and --initrd go together (the initramfs needs the 9p modules)');
    const cpus = intOption(values.cpus, '--cpus', 1, 1024) ?? 1;
    const timeoutS = intOption(values.timeout, '--timeout', 1, 7 * 24 * 3600);
    // The directories become shares: their checks (exists, a directory, readable) come first.
    resolveShares([process.cwd(), ...(values.rw ?? [])].map((path, n) => ({ path, tag: `nkvm-rw${n}` })));
    if (process.env.NODE_KVM_LAB !== '1' && !(await doctor()).canBootLinuxDirectly) {
      if (!values.lab) {
        write(io.stderr, 'node-kvm exec: this host\'s KVM cannot boot a Linux kernel directly; add --lab (see `node-kvm doctor`).');
        return 1;
      }
      const bin = fileURLToPath(new URL('../../../bin/node-kvm.js', import.meta.url));
      const inner = argv.filter((a, i) => !(a === '--lab' && i < dd));
      const r = await runInLab({ command: [process.execPath, bin, 'exec', ...inner], stdout: io.stdout, stderr: io.stderr });
      if (r.error) write(io.stderr, `node-kvm exec --lab: ${r.error}`);
      return r.exitCode;
    }
    let timedOut = false;
    const r = await execInVm(cmd, {
      ...(values.kernel !== undefined ? { kernel: values.kernel, initrd: values.initrd } : {}),
      memory: values.memory ?? '1G', cpus, rw: values.rw ?? [],
      onStdout: (b) => io.stdout.write(b), onStderr: (b) => io.stderr.write(b),
      ...(timeoutS !== undefined ? { timeout: timeoutS * 1000 } : {}),
    }).catch((e: { code?: string }) => {
      if (timeoutS !== undefined && e.code === 'ERR_EXEC_NO_STATUS') { timedOut = true; return undefined; }
      throw e;
    });
    if (timedOut || r === undefined) {
      write(io.stderr, `node-kvm exec: timed out after ${timeoutS} s`);
      return 124;
    }
    return r.exitCode;
  },
};
