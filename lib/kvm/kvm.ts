// /dev/kvm: the system handle. Checks the API version once and turns the usual failures to
// open it into messages that name the fix.
import { InvalidArgumentError, KvmError } from '../errors.js';
import { native } from '../native.js';
import { FdHandle } from './handle.js';
import type { CpuidEntry } from './regs.js';
import { decodeCpuid } from './structs.js';
import { Vm } from './vm.js';

/** The only KVM API version there has ever been (KVM_GET_API_VERSION). */
export const KVM_API_VERSION = 12;

/** The system handle on `/dev/kvm`: capabilities, supported CPUID and MSRs, and VM creation. */
export class Kvm extends FdHandle {
  /** KVM_GET_API_VERSION: always 12. */
  readonly apiVersion: number;
  /** Bytes of each vCPU's shared `kvm_run` mapping (KVM_GET_VCPU_MMAP_SIZE). */
  readonly vcpuMmapSize: number;
  /** The device path this handle opened. */
  readonly path: string;

  private constructor(fd: number, path: string, apiVersion: number, vcpuMmapSize: number) {
    super(fd, path);
    this.path = path;
    this.apiVersion = apiVersion;
    this.vcpuMmapSize = vcpuMmapSize;
  }

  /** Open `/dev/kvm` (or `path`). Fails with a {@link KvmError} whose message names the fix (ENOENT: load kvm_intel/kvm_amd; EACCES: join group kvm). */
  static open(path = '/dev/kvm'): Kvm {
    if (typeof path !== 'string' || path.length === 0) throw new InvalidArgumentError('path must be a non-empty string');
    const n = native();
    let fd: number;
    try {
      fd = n.open(path);
    } catch (e) {
      if (!(e instanceof KvmError)) throw e;
      const fix = e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'ENXIO'
        ? 'KVM is not loaded: `modprobe kvm_intel` or `modprobe kvm_amd` (and enable VT-x/AMD-V in firmware), or run inside `node-kvm lab`'
        : e.code === 'EACCES' || e.code === 'EPERM'
          ? `no permission: add your user to the group that owns ${path} (\`sudo usermod -aG kvm $USER\`, then log in again)`
          : 'see `node-kvm doctor`';
      throw new KvmError(e.code, e.errno, 'open', `cannot open ${path}: ${e.code}: ${fix}`);
    }
    // Ask before a handle exists, so a failure (ENOTTY: the path is not /dev/kvm) closes the fd
    // here and now instead of leaving it to a finalizer.
    let apiVersion: number;
    let vcpuMmapSize: number;
    try {
      apiVersion = n.getApiVersion(fd);
      if (apiVersion !== KVM_API_VERSION) {
        throw new KvmError('ENOTSUP', 95, 'KVM_GET_API_VERSION', `${path} speaks KVM API ${apiVersion}, node-kvm needs ${KVM_API_VERSION}`);
      }
      vcpuMmapSize = n.getVcpuMmapSize(fd);
    } catch (e) {
      n.close(fd);
      if (e instanceof KvmError && e.code === 'ENOTTY') {
        throw new KvmError(e.code, e.errno, e.syscall, `${path} is not a KVM device (${e.syscall}: ENOTTY): open /dev/kvm; see \`node-kvm doctor\``);
      }
      throw e;
    }
    return new Kvm(fd, path, apiVersion, vcpuMmapSize);
  }

  /** KVM_CHECK_EXTENSION: 0 when `cap` (a `constants.KVM_CAP_*`) is absent, else a capability-specific positive value. */
  checkExtension(cap: number): number {
    this.ensureOpen();
    return native().checkExtension(this.rawFd, cap);
  }

  /** KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can offer a guest. */
  getSupportedCpuid(): CpuidEntry[] {
    this.ensureOpen();
    return decodeCpuid(native().getSupportedCpuid(this.rawFd));
  }

  /** KVM_GET_MSR_INDEX_LIST: the MSRs a VMM may save and restore. */
  getMsrIndexList(): number[] {
    this.ensureOpen();
    return native().getMsrIndexList(this.rawFd);
  }

  /** KVM_CREATE_VM: a new VM, closed with this handle at the latest. */
  createVm(): Vm {
    this.ensureOpen();
    return new Vm(native().createVm(this.rawFd), this.vcpuMmapSize);
  }
}
