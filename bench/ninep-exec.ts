// The 9p bench's exec row: wall time of `node-kvm exec -- true` (execInVm: boot, the host's root
// over 9p with an in-guest overlay, run the command, power off) against QEMU booting the same
// kernel, initramfs and command line with the same three 9p exports (the host's root read-only,
// the working directory, the exec directory holding run.sh), timed from spawn to exit.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execCmdline, execInVm, execScript } from '../lib/testing/exec-in-vm.js';

/** Seconds for one `true` under node-kvm. */
export async function oursExecTrue(kernel: string, initrd: string, memory: string): Promise<number> {
  const t0 = performance.now();
  const r = await execInVm(['true'], { kernel, initrd, memory, timeout: 600_000 });
  const s = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`node-kvm exec -- true exited ${r.exitCode}: ${r.stderr.toString()}`);
  return s;
}

/** Seconds for one `true` under QEMU, the guest side identical to execInVm's. */
export async function qemuExecTrue(kernel: string, initrd: string, memory: string): Promise<number> {
  const x = mkdtempSync(join(tmpdir(), 'node-kvm-9p-bench-exec-'));
  const cwd = process.cwd();
  try {
    writeFileSync(join(x, 'run.sh'), execScript({ argv: ['true'], cwd, rw: [], uid: 0, gid: 0, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }));
    writeFileSync(join(x, 'out'), '');
    writeFileSync(join(x, 'err'), '');
    const fs = (path: string, tag: string, ro: boolean): string[] =>
      ['-virtfs', `local,path=${path},mount_tag=${tag},security_model=none,multidevs=remap${ro ? ',readonly=on' : ''}`];
    const t0 = performance.now();
    const child = spawn('qemu-system-x86_64', [
      '-enable-kvm', '-cpu', 'host,-xsave', '-M', 'pc', '-m', memory, '-smp', '1', '-nodefaults', '-no-user-config',
      '-display', 'none', '-no-reboot', '-serial', 'null', '-kernel', kernel, '-initrd', initrd, '-append', execCmdline(),
      ...fs('/', 'nkvm-root', true), ...fs(cwd, 'nkvm-rw0', false), ...fs(x, 'nkvm-exec', false),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const s = (performance.now() - t0) / 1000;
    let status: string;
    try {
      status = readFileSync(join(x, 'status'), 'utf8').trim();
    } catch {
      throw new Error(`QEMU (exit ${code}) ended before the command did: ${err.slice(-1000)}`);
    }
    if (status !== '0') throw new Error(`under QEMU, true exited ${status}: ${readFileSync(join(x, 'err'), 'utf8')}`);
    return s;
  } finally {
    rmSync(x, { recursive: true, force: true });
  }
}
