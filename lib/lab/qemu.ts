// The QEMU command line of the lab's L1.
import type { Image } from '../images/manifest.js';
import { HOSTROOT_TAG, LAB_STDERR_PORT, LAB_STDOUT_PORT } from './l1-init.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface LabQemuOptions {
  image: Image;
  memory: string; // "3G"
  cpus: number;
  jobPath: string;
  sockets: { console: string; stdout: string; stderr: string };
  /** Boot the uncompressed vmlinux through its PVH entry (~3 s to L1 userspace vs 6-8 s). */
  pvh?: boolean;
}

export function labQemuArgs(o: LabQemuOptions): string[] {
  const chardev = (id: string, path: string): string[] => ['-chardev', `socket,id=${id},path=${path},server=off`];
  return [
    // TCG: this host has no VMX/SVM; -cpu max emulates AMD SVM with nested paging
    // (QEMU 7.2 has no -cpu host under TCG)
    '-accel', 'tcg', '-M', 'pc', '-cpu', 'max', '-smp', String(o.cpus), '-m', o.memory,
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none', '-no-reboot', '-nic', 'none',
    ...chardev('con', o.sockets.console), '-serial', 'chardev:con',
    '-device', 'virtio-serial-pci,id=vser',
    ...chardev('out', o.sockets.stdout), '-device', `virtserialport,bus=vser.0,chardev=out,name=${LAB_STDOUT_PORT}`,
    ...chardev('err', o.sockets.stderr), '-device', `virtserialport,bus=vser.0,chardev=err,name=${LAB_STDERR_PORT}`,
    '-kernel', o.pvh === false ? o.image.kernel : o.image.vmlinux,
    '-initrd', o.image.initrd,
    // nohz=off lapic=notscdeadline: L1 keeps a periodic LAPIC tick. Seen here: with a
    // tickless L1 on the TSC-deadline timer, QEMU 7.2 TCG (nested SVM) sometimes arms its
    // timer hours ahead while L1 idles with L2 halted, and the whole lab freezes.
    '-append', `console=ttyS0 quiet panic=-1 nohz=off lapic=notscdeadline nkvm.lab.job=${o.jobPath}`,
    '-virtfs', `local,path=/,mount_tag=${HOSTROOT_TAG},security_model=none,readonly=on,multidevs=remap`,
  ];
}
