// doctor(): what this host can do — /dev/kvm and its backing module, VMX/SVM, whether a stock
// Linux kernel boots directly or needs the nested lab, TAP and netns, QEMU, cached images.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { listImages } from './images/build.js';
import { cacheRoot } from './images/cache.js';
import { QEMU_BINARY } from './lab/qemu.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  id: string;
  status: CheckStatus;
  detail: string;
  /** What to do about it, when not ok. */
  fix?: string;
}

export type KvmBackend = 'kvm_intel' | 'kvm_amd' | 'kvm_pvm';

export interface DoctorReport {
  kvm: { present: boolean; accessible: boolean; backends: KvmBackend[] };
  cpu: { vmx: boolean; svm: boolean };
  /** A stock Linux guest boots on this host's /dev/kvm (else: use the lab). */
  canBootLinuxDirectly: boolean;
  tap: { tunDevice: boolean; capNetAdmin: boolean; usable: boolean };
  netns: { usable: boolean };
  qemu: { present: boolean; version?: string };
  images: { cacheDir: string; names: string[]; broken: string[] };
  checks: DoctorCheck[];
}

export interface DoctorEnv {
  /** Overridable roots so tests can point at fixtures. */
  sysModule?: string;
  cpuinfo?: string;
  procStatus?: string;
  devKvm?: string;
}

/** Effective capability bit from /proc/self/status (CAP_NET_ADMIN=12, CAP_SYS_ADMIN=21). */
export function hasCapability(bit: number, statusPath = '/proc/self/status'): boolean {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync(statusPath, 'utf8'))?.[1];
    return hex !== undefined && ((BigInt('0x' + hex) >> BigInt(bit)) & 1n) === 1n;
  } catch {
    return false;
  }
}

export function qemuVersion(bin = QEMU_BINARY): string | undefined {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) return undefined;
  return /version\s+(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0];
}

export async function doctor(env: DoctorEnv = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const add = (id: string, status: CheckStatus, detail: string, fix?: string): void => {
    checks.push(fix && status !== 'ok' ? { id, status, detail, fix } : { id, status, detail });
  };

  const devKvm = env.devKvm ?? '/dev/kvm';
  const present = existsSync(devKvm) && statSync(devKvm).isCharacterDevice();
  let accessible = false;
  if (present) {
    try {
      accessSync(devKvm, constants.R_OK | constants.W_OK);
      accessible = true;
    } catch {
      accessible = false;
    }
  }
  if (!present) add('kvm-device', 'fail', `${devKvm} does not exist`, 'load kvm_intel or kvm_amd (modprobe kvm_intel / kvm_amd), or enable virtualization in firmware; without it use `node-kvm lab` on a host that has QEMU');
  else if (!accessible) add('kvm-device', 'fail', `${devKvm} exists but is not read/writable by this user`, 'add yourself to group kvm: sudo usermod -aG kvm $USER, then log in again');
  else add('kvm-device', 'ok', `${devKvm} is read/writable`);

  const sysModule = env.sysModule ?? '/sys/module';
  const backends = (['kvm_intel', 'kvm_amd', 'kvm_pvm'] as const).filter((m) => existsSync(`${sysModule}/${m}`));
  if (backends.length === 0) add('kvm-backend', present ? 'warn' : 'fail', 'no kvm_intel, kvm_amd or kvm_pvm module loaded', 'modprobe kvm_intel or kvm_amd');
  else add('kvm-backend', backends.includes('kvm_pvm') ? 'warn' : 'ok', `backed by ${backends.join(', ')}${backends.includes('kvm_pvm') ? ' (software virtualization: small guests only, no stock Linux)' : ''}`);

  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync(env.cpuinfo ?? '/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    flags = '';
  }
  const vmx = /\bvmx\b/.test(flags);
  const svm = /\bsvm\b/.test(flags);
  add('cpu-virt', vmx || svm ? 'ok' : 'warn', vmx ? 'CPU has VMX (Intel VT-x)' : svm ? 'CPU has SVM (AMD-V)' : 'CPU shows neither VMX nor SVM', 'enable nested virtualization / VT-x / AMD-V, or run Linux guests in the lab');

  const hwBackend = backends.some((b) => b === 'kvm_intel' || b === 'kvm_amd');
  const canBootLinuxDirectly = accessible && hwBackend && !backends.includes('kvm_pvm') && (vmx || svm);
  add('linux-guests', canBootLinuxDirectly ? 'ok' : 'warn', canBootLinuxDirectly
    ? 'stock Linux guests boot directly on /dev/kvm'
    : 'stock Linux guests cannot boot on this /dev/kvm: run them inside the nested lab', 'node-kvm lab -- <command>  (QEMU TCG with emulated SVM; slower but real KVM)');

  const tunDevice = existsSync('/dev/net/tun');
  const capNetAdmin = hasCapability(12, env.procStatus);
  const tapUsable = tunDevice && capNetAdmin;
  add('tap', tapUsable ? 'ok' : 'warn', `/dev/net/tun ${tunDevice ? 'present' : 'missing'}, CAP_NET_ADMIN ${capNetAdmin ? 'yes' : 'no'}`,
    !tunDevice ? 'modprobe tun' : 'run as root or grant CAP_NET_ADMIN (setcap cap_net_admin+ep $(which node)); the in-process switch needs neither');

  const ipNetns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  const netnsUsable = !ipNetns.error && ipNetns.status === 0 && hasCapability(21, env.procStatus);
  add('netns', netnsUsable ? 'ok' : 'warn', netnsUsable ? '`ip netns` usable' : '`ip netns` unavailable or not permitted', 'install iproute2 and run as root (CAP_SYS_ADMIN)');

  const version = qemuVersion();
  add('qemu', version ? 'ok' : canBootLinuxDirectly ? 'warn' : 'fail', version ? `${QEMU_BINARY} ${version}` : `${QEMU_BINARY} not found`, 'apt-get install qemu-system-x86 (needed by `node-kvm lab`)');

  const root = cacheRoot();
  const imgs = listImages(root);
  const names = imgs.filter((i) => i.ok).map((i) => i.name);
  const broken = imgs.filter((i) => !i.ok).map((i) => i.name);
  add('images', names.includes('default') ? 'ok' : 'warn', `cache ${root}: ${names.length ? names.join(', ') : 'no images'}${broken.length ? `; broken: ${broken.join(', ')}` : ''}`, 'node-kvm image build');

  return {
    kvm: { present, accessible, backends: [...backends] },
    cpu: { vmx, svm },
    canBootLinuxDirectly,
    tap: { tunDevice, capNetAdmin, usable: tapUsable },
    netns: { usable: netnsUsable },
    qemu: version ? { present: true, version } : { present: false },
    images: { cacheDir: root, names, broken },
    checks,
  };
}
