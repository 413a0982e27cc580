// virtio-9p (virtio 1.2 §5.13 "9P Transport"): one request queue; each chain holds a
// T-message in its readable buffers and room for the R-message in its writable ones. The
// config space is the mount tag (tag_len[2] + tag bytes, no NUL) under feature
// VIRTIO_9P_MOUNT_TAG. Requests go to a P9Server, run concurrently on the threadpool and are
// pushed back in the order they finish; vCPU 0 only pops chains and starts work.
import type { VirtioDevice, VirtioDeviceContext } from '../device.js';
import type { DescriptorChain } from '../chain.js';
import type { Virtqueue } from '../virtqueue.js';
import { bit } from '../features.js';
import { NodeKvmError } from '../../../errors.js';
import type { P9Server } from './server.js';
import type { P9SessionState } from './persist.js';

export const VIRTIO_ID_9P = 9;
/** Feature bit: the config space holds the mount tag. */
export const VIRTIO_9P_MOUNT_TAG = 0;
/** Queue size (Linux's 9p transport uses up to 128 descriptors per chain). */
export const VIRTIO_9P_QUEUE_SIZE = 128;
/** Chains started per notification; the transport calls again for the rest. */
const BATCH = 64;

/** What a snapshot keeps of a virtio-9p device (queue state is the transport's). */
export interface Virtio9pState {
  tag: string;
  /** Absent in snapshots from before shares could be snapshotted (their fids are not restored). */
  session?: P9SessionState;
}

export class Virtio9p implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_9P;
  readonly features = bit(VIRTIO_9P_MOUNT_TAG);
  readonly queueMaxSizes = [VIRTIO_9P_QUEUE_SIZE] as const;
  readonly configSize: number;
  private readonly config: Uint8Array;
  private ctx: VirtioDeviceContext | undefined;
  /** Bumped by reset(): replies of requests started before it are not pushed. */
  private generation = 0;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  /** Set by hold(): no chain is popped (a snapshot is being taken or put back). */
  private held = false;
  /** Set by loadState(): the restore of the fids, run by finishLoad(); no chain is popped until then. */
  private loading: (() => Promise<number>) | undefined;

  constructor(readonly server: P9Server) {
    const tag = Buffer.from(server.share.tag);
    this.config = new Uint8Array(2 + tag.byteLength);
    new DataView(this.config.buffer).setUint16(0, tag.byteLength, true);
    this.config.set(tag, 2);
    this.configSize = this.config.byteLength;
  }

  get tag(): string { return this.server.share.tag; }
  /** Requests started and not answered yet. */
  get pending(): number { return this.inflight; }

  attach(ctx: VirtioDeviceContext): void { this.ctx = ctx; }

  readConfig(offset: number, size: number): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v * 256) + (this.config[offset + i] ?? 0);
    return v >>> 0;
  }

  writeConfig(): void { /* the tag is read-only */ }

  activate(): void { /* nothing to set up: the server is ready */ }

  queueNotify(index: number): boolean {
    const ctx = this.ctx;
    // Chains stay in the available ring (not popped) while held: a snapshot then never sees a
    // chain that was popped and not answered; the transport is asked again on release.
    if (ctx === undefined || index !== 0 || this.held || this.loading !== undefined) return false;
    const q = ctx.queue(0);
    for (let i = 0; i < BATCH; i++) {
      const chain = q.pop();
      if (chain === undefined) return false;
      this.start(q, chain);
    }
    return q.pending() > 0;
  }

  private start(q: Virtqueue, chain: DescriptorChain): void {
    if (chain.readableLength === 0 || chain.writableLength === 0) {
      q.drop(chain);
      q.notify();
      return;
    }
    const gen = this.generation;
    this.inflight++;
    this.server.handle(chain.readableViews(), chain.writableViews(), (len) => {
      if (--this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
      if (gen !== this.generation) return;
      q.push(chain, len);
      q.notify();
    });
  }

  reset(): void {
    // Requests under way finish on the host; their chains belong to the old queue and are not
    // pushed. The driver starts a new session with Tversion, which clunks every fid.
    this.generation++;
  }

  /** Stops popping chains (requests under way still finish). */
  hold(): void { this.held = true; }

  /** Pops chains again, starting with those the driver made available meanwhile. */
  release(): void {
    this.held = false;
    if (this.loading === undefined) this.ctx?.schedule(0);
  }

  /** Resolves when no request is under way, or rejects with ERR_SNAPSHOT_BUSY after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        reject(new NodeKvmError('ERR_SNAPSHOT_BUSY', `share "${this.tag}": ${this.inflight} 9P request(s) still under way on the host after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.idleWaiters.push(done);
    });
  }

  /**
   * The tag and the 9P session (msize, every fid by path and open flags). Requests under way
   * would change fids and write guest RAM after the capture: the machine drains them first.
   */
  saveState(): Virtio9pState {
    if (this.inflight > 0) throw new NodeKvmError('ERR_SNAPSHOT_BUSY', `share "${this.tag}": ${this.inflight} 9P request(s) under way`);
    return { tag: this.tag, session: this.server.saveSession() };
  }

  /**
   * Checks the saved state (synchronously: ERR_SNAPSHOT_MISMATCH for another tag,
   * ERR_SNAPSHOT_CORRUPT for a malformed session); the fids are reopened by finishLoad().
   */
  loadState(state: unknown): void {
    const s = state as Partial<Virtio9pState> | null;
    if (s === null || typeof s !== 'object' || s.tag !== this.tag) {
      throw new NodeKvmError('ERR_SNAPSHOT_MISMATCH', `virtio-9p device: the snapshot's share is ${JSON.stringify((s as { tag?: unknown } | null)?.tag)}, this one "${this.tag}"`);
    }
    // Replies of requests started before the restore belong to the old RAM: not pushed.
    this.generation++;
    this.loading = this.server.prepareSession(s.session ?? { msize: this.server.msize, devIndex: [], fids: [] });
  }

  /**
   * Reopens the fids loadState() read (each beneath the export's root, or stale) and lets the
   * queue run. Resolves with the number of stale fids (0 when there was nothing to load).
   */
  async finishLoad(): Promise<number> {
    const load = this.loading;
    if (load === undefined) return 0;
    try {
      return await load();
    } finally {
      this.loading = undefined;
      if (!this.held) this.ctx?.schedule(0);
    }
  }

  /** Waits for requests under way (they write into guest RAM), then closes the export. */
  async close(): Promise<void> {
    this.generation++;
    await this.server.close();
  }
}
