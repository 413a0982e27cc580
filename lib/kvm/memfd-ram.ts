// Guest RAM of an in-memory snapshot, held in one anonymous memory file (memfd) with the RAM
// regions back to back at page-aligned offsets. A restore maps a region MAP_PRIVATE over the
// RAM slot, exactly as for a snapshot file: the guest reads the snapshot's pages in place and
// its writes go to private copies, so restoring costs page faults for what the guest touches,
// not a copy of all of RAM, and any number of restores start from the same bytes.
import { KvmError } from '../errors.js';
import { native } from '../native.js';
import { snapshotTrace } from '../snapshot-trace.js';

const PAGE = 4096;
const alignUp = (n: number): number => Math.ceil(n / PAGE) * PAGE;

/** memfd_create is missing (ENOSYS: old kernel) or filtered out (EPERM: a seccomp policy). */
const UNSUPPORTED = new Set(['ENOSYS', 'EPERM']);

export class MemfdRam {
  private fdValue: number;
  /** Copy-on-write views for regionBytes()/save(), made on first use, unmapped by close(). */
  private readonly views: Array<ArrayBuffer | undefined>;

  private constructor(fd: number, private readonly offsets: readonly number[], private readonly sizes: readonly number[]) {
    this.fdValue = fd;
    this.views = sizes.map(() => undefined);
  }

  /**
   * A memfd holding a copy of `regions` (zero pages left as holes), or undefined where this
   * kernel offers no memfd (the caller keeps a JS copy instead).
   */
  static capture(regions: readonly Uint8Array[]): MemfdRam | undefined {
    const n = native();
    const offsets: number[] = [];
    let total = 0;
    for (const r of regions) {
      offsets.push(total);
      total = alignUp(total + r.length);
    }
    let fd: number;
    try {
      fd = n.memfdCreate('node-kvm-snapshot', total);
    } catch (e) {
      if (e instanceof KvmError && UNSUPPORTED.has(e.code)) return undefined;
      throw e;
    }
    try {
      const written = regions.reduce((sum, r, i) => sum + n.memfdWriteSparse(fd, r, offsets[i]!), 0);
      snapshotTrace(`memfd holds ${(written / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(0)} MiB (the rest is zero pages)`);
    } catch (e) {
      n.close(fd);
      throw e;
    }
    return new MemfdRam(fd, offsets, regions.map((r) => r.length));
  }

  /** Where region `i` lives: the memfd and the offset in it, for a mapping made elsewhere. */
  source(i: number): { fd: number; offset: number } {
    return { fd: this.fd, offset: this.offsets[i]! };
  }

  /** A private (copy-on-write) mapping of region `i`: the caller owns it (e.g. as a RAM slot's backing). */
  mapPrivate(i: number): ArrayBuffer {
    return native().mmapFilePrivate(this.fd, this.sizes[i]!, this.offsets[i]!);
  }

  /** Region `i`'s bytes, valid until close(). Writes to it stay private to this view. */
  view(i: number): Uint8Array {
    const buffer = (this.views[i] ??= this.mapPrivate(i));
    return new Uint8Array(buffer, 0, this.sizes[i]!);
  }

  private get fd(): number {
    if (this.fdValue < 0) throw new KvmError('EBADF', 9, 'mmap', 'snapshot memory is closed');
    return this.fdValue;
  }

  /**
   * Release the memfd and the views. RAM slots mapped from it keep their pages (a mapping holds
   * the file open), so a machine restored from the snapshot runs on after it is closed.
   */
  close(): void {
    if (this.fdValue < 0) return;
    const n = native();
    for (const v of this.views) if (v !== undefined) n.munmap(v);
    this.views.fill(undefined);
    n.close(this.fdValue);
    this.fdValue = -1;
  }
}
