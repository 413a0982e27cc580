// Loads the native shim and describes its surface (node-pty's native.d.ts is the model:
// a typed interface, never `any`). The shim has no policy; lib/kvm adds it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvmError, NodeKvmError } from './errors.js';

export type Offsets = Record<string, number>;

export interface NativeLayout {
  kvm_run: Offsets;
  kvm_regs: Offsets;
  kvm_segment: Offsets;
  kvm_sregs: Offsets;
  kvm_fpu: Offsets;
  kvm_cpuid_entry2: Offsets;
  kvm_msrs: Offsets;
  kvm_vcpu_events: Offsets;
  kvm_stats: Offsets;
  kvm_coalesced_mmio_ring: Offsets;
  /** <linux/virtio_net.h>: the header IFF_VNET_HDR puts before each TAP frame. */
  virtio_net_hdr: Offsets;
  sizes: { kvm_lapic_state: number; kvm_xcrs: number };
}

export interface INative {
  setErrorClass(cls: typeof KvmError): void;
  layout: NativeLayout;
  constants: Record<string, number>;
  // /dev/kvm
  open(path: string): number;
  close(fd: number): void;
  getApiVersion(fd: number): number;
  checkExtension(fd: number, cap: number): number;
  getVcpuMmapSize(fd: number): number;
  createVm(fd: number, type?: number): number;
  getSupportedCpuid(fd: number): Uint8Array;
  getMsrIndexList(fd: number): number[];
  eventfd(initval?: number): number;
  // VM
  setUserMemoryRegion(vmfd: number, slot: number, flags: number, guestPhysAddr: number, size: number, buffer: ArrayBuffer | null): number;
  createIrqchip(vmfd: number): number;
  createPit2(vmfd: number, flags?: number): number;
  irqLine(vmfd: number, irq: number, level: number): number;
  setTssAddr(vmfd: number, addr: number): number;
  setIdentityMapAddr(vmfd: number, addr: number): number;
  ioeventfd(vmfd: number, addr: number, len: number, eventfd: number, datamatch: bigint, flags: number): number;
  irqfd(vmfd: number, eventfd: number, gsi: number, flags: number, resamplefd?: number): number;
  signalMsi(vmfd: number, address: bigint, data: number, flags?: number, devid?: number): number;
  eventfdWatch(fd: number, onSignal: (count: number, errno: number) => void, ref?: boolean): void;
  eventfdUnwatch(fd: number): void;
  eventfdWatchCount(): number;
  getDirtyLog(vmfd: number, slot: number, bitmap: Uint8Array): number;
  getStatsFd(fd: number): number;
  createVcpu(vmfd: number, id: number): number;
  registerCoalescedMmio(vmfd: number, addr: number, size: number, pio: number): number;
  unregisterCoalescedMmio(vmfd: number, addr: number, size: number, pio: number): number;
  // memory
  mmapAnonymous(size: number): ArrayBuffer;
  mmapFd(fd: number, size: number): ArrayBuffer;
  munmap(buffer: ArrayBuffer): void;
  remapFilePrivate(buffer: ArrayBuffer, fd: number, offset: number): void;
  address(buffer: ArrayBuffer): bigint;
  // vCPU
  registerRun(vcpufd: number, run: ArrayBuffer): void;
  unregisterRun(vcpufd: number): void;
  run(vcpufd: number): number;
  kick(vcpufd: number): void;
  getRegs(fd: number): Uint8Array;
  setRegs(fd: number, bytes: Uint8Array): void;
  getSregs(fd: number): Uint8Array;
  setSregs(fd: number, bytes: Uint8Array): void;
  getFpu(fd: number): Uint8Array;
  setFpu(fd: number, bytes: Uint8Array): void;
  getLapic(fd: number): Uint8Array;
  setLapic(fd: number, bytes: Uint8Array): void;
  getVcpuEvents(fd: number): Uint8Array;
  setVcpuEvents(fd: number, bytes: Uint8Array): void;
  getXcrs(fd: number): Uint8Array;
  setXcrs(fd: number, bytes: Uint8Array): void;
  getMpState(fd: number): number;
  setMpState(fd: number, state: number): void;
  getMsrs(fd: number, kvmMsrs: Uint8Array): number;
  setMsrs(fd: number, kvmMsrs: Uint8Array): number;
  setCpuid2(fd: number, entries: Uint8Array): void;
  setSignalMask(fd: number, signals: number[] | null): void;
  // kicker + native vCPU threads
  kickerRef(): void;
  kickerUnref(): void;
  kickerRefreshTimers(sliceMs?: number): void;
  kickerStats(): { refs: number; timers: number; deadlineMs: number };
  startVcpuThread(vcpufd: number, onExit: (fd: number, reason: number, errno: number) => boolean): void;
  stopVcpuThread(vcpufd: number): void;
  vcpuThreadCount(): number;
  // TAP (/dev/net/tun): frames arrive in batches from a uv_poll_t; errno != 0 ends reading
  /** `offloads` (TUN_F_*): TUNSETOFFLOAD, when the TAP has a virtio-net header; the result says what was set. */
  tapOpen(name: string, flags?: number, offloads?: number): { fd: number; name: string; persistent: boolean; vnetHdrLen: number; offloads: number };
  /**
   * `hdrLen`: bytes of virtio-net header before each frame read; the frame's view starts after
   * it. The frames are views of one read buffer that every batch reuses: copy what you keep.
   */
  tapStartReading(fd: number, onFrames: (frames: Uint8Array[], errno: number) => void, hdrLen?: number): void;
  tapStopReading(fd: number): void;
  tapSetRef(fd: number, ref: boolean): void;
  /** One writev of `header` (if given) and `frame`. */
  tapWrite(fd: number, frame: Uint8Array, header?: Uint8Array): number;
  /** Read what the TAP already holds, now (no waiting for libuv). */
  /** Frames already queued on the TAP; `errno` is set on the array only when reading failed. */
  tapReadNow(fd: number): Uint8Array[] & { errno?: number };
  tapClose(fd: number): void;
  /** Start fd's writer thread (idempotent); its queue holds at most `maxQueuedBytes`. */
  tapWriterStart(fd: number, maxQueuedBytes: number): void;
  /** 1 queued, 0 dropped (queue full), -errno once the writer stopped for good (EBADFD). */
  tapWriteQueued(fd: number, frame: Uint8Array, header?: Uint8Array): number;
  /** The writer's counters, after waiting (at most 1 s) for its queue to drain. */
  tapWriterStats(fd: number): { frames: number; bytes: number; dropped: number; errors: number } | undefined;
  tapWriterCount(): number;
  tapReaderCount(): number;
  // snapshots: in-kernel irqchip/PIT/kvmclock, XSAVE, TSC rate, copy-on-write file mappings
  getIrqchip(vmfd: number, chipId: number): Uint8Array;
  setIrqchip(vmfd: number, bytes: Uint8Array): void;
  getPit2(vmfd: number): Uint8Array;
  setPit2(vmfd: number, bytes: Uint8Array): void;
  getClock(vmfd: number): Uint8Array;
  setClock(vmfd: number, bytes: Uint8Array): void;
  getXsave(vcpufd: number, size?: number): Uint8Array;
  setXsave(vcpufd: number, bytes: Uint8Array): void;
  getTscKhz(vcpufd: number): number;
  mmapFilePrivate(fd: number, size: number, offset?: number): ArrayBuffer;
  // in-memory snapshots: guest RAM in a memfd (sparse: zero pages stay holes)
  memfdCreate(name: string, size: number): number;
  memfdWriteSparse(fd: number, bytes: Uint8Array, offset: number): number;
  // *at() file syscalls on the libuv threadpool (native/fs.cc): each resolves with the
  // syscall's result or rejects with KvmError (code = errno name). Paths: string or raw bytes.
  fsConstants: FsConstants;
  openat2(dirfd: number, path: FsPath, flags: number, mode: number, resolve: number): Promise<number>;
  /** [mask, mode, nlink, uid, gid, rdevMajor, rdevMinor, ino, size, blocks, blksize, atimeSec,
   *  atimeNsec, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec, btimeSec, btimeNsec, devMajor, devMinor] */
  statx(dirfd: number, path: FsPath, flags: number, mask: number): Promise<BigInt64Array>;
  // Synchronous twins for calls told not to block (RESOLVE_CACHED, RWF_NOWAIT): the result
  // or -errno, never a throw.
  openat2Now(dirfd: number, path: FsPath, flags: number, mode: number, resolve: number): number;
  /** Fills `out` (21 fields, as statx()); 0 or -errno. */
  statxNow(dirfd: number, path: FsPath, flags: number, mask: number, out: BigInt64Array): number;
  preadv2Now(fd: number, buffers: Uint8Array[], offset: number, flags: number): number;
  pwritev2Now(fd: number, buffers: Uint8Array[], offset: number, flags: number): number;
  mkdirat(dirfd: number, path: FsPath, mode: number): Promise<number>;
  mknodat(dirfd: number, path: FsPath, mode: number, major: number, minor: number): Promise<number>;
  unlinkat(dirfd: number, path: FsPath, flags: number): Promise<number>;
  renameat2(olddirfd: number, oldpath: FsPath, newdirfd: number, newpath: FsPath, flags: number): Promise<number>;
  linkat(olddirfd: number, oldpath: FsPath, newdirfd: number, newpath: FsPath, flags: number): Promise<number>;
  symlinkat(target: FsPath, newdirfd: number, linkpath: FsPath): Promise<number>;
  readlinkat(dirfd: number, path: FsPath): Promise<Buffer>;
  fchmodat(dirfd: number, path: FsPath, mode: number, flags: number): Promise<number>;
  fchownat(dirfd: number, path: FsPath, uid: number, gid: number, flags: number): Promise<number>;
  utimensat(dirfd: number, path: FsPath, atimeSec: number | bigint, atimeNsec: number, mtimeSec: number | bigint, mtimeNsec: number, flags: number): Promise<number>;
  /** lseek(fd, offset) + getdents64 into `buffer`: bytes filled, 0 at the end. */
  getdents64(fd: number, buffer: Uint8Array, offset: number | bigint): Promise<number>;
  /** [type, bsize, blocks, bfree, bavail, files, ffree, fsid, namelen] */
  fstatfs(fd: number): Promise<BigInt64Array>;
}

export type FsPath = string | Uint8Array;

/** The flag values native/fs.cc was built with (from the C headers, not hard-coded in TS). */
export interface FsConstants {
  AT_FDCWD: number; AT_EMPTY_PATH: number; AT_SYMLINK_NOFOLLOW: number; AT_SYMLINK_FOLLOW: number; AT_REMOVEDIR: number;
  RESOLVE_BENEATH: number; RESOLVE_NO_SYMLINKS: number; RESOLVE_NO_MAGICLINKS: number; RESOLVE_NO_XDEV: number; RESOLVE_IN_ROOT: number;
  RESOLVE_CACHED: number; RWF_NOWAIT: number; AT_STATX_DONT_SYNC: number;
  O_RDONLY: number; O_WRONLY: number; O_RDWR: number; O_CREAT: number; O_EXCL: number; O_NOCTTY: number; O_TRUNC: number;
  O_APPEND: number; O_NONBLOCK: number; O_DSYNC: number; O_SYNC: number; O_DIRECTORY: number; O_NOFOLLOW: number;
  O_NOATIME: number; O_CLOEXEC: number; O_PATH: number; O_LARGEFILE: number;
  UTIME_NOW: number; UTIME_OMIT: number; STATX_BASIC_STATS: number; STATX_BTIME: number; RENAME_NOREPLACE: number;
}

function findAddon(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/lib/native.js -> project root is two levels up; lib/native.ts (ts-node style) one.
  for (const root of [join(here, '..', '..'), join(here, '..')]) {
    for (const build of ['Release', 'Debug']) {
      const p = join(root, 'build', build, 'node_kvm.node');
      if (existsSync(p)) return p;
    }
  }
  throw new NodeKvmError('ERR_NATIVE_MISSING',
    'node-kvm native addon not built: run `npm run build:native` (needs python3, make, g++)');
}

let loaded: INative | undefined;

/** The native shim, loaded on first use (so pure-TS parts work without a build). */
export function native(): INative {
  if (loaded === undefined) {
    const require = createRequire(import.meta.url);
    const n = require(findAddon()) as INative;
    n.setErrorClass(KvmError);
    loaded = n;
  }
  return loaded;
}
