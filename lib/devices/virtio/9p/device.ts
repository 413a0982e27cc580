// virtio-9p (virtio 1.2 §5.13 "9P Transport"): one request queue; each chain holds a
// T-message in its readable buffers and room for the R-message in its writable ones. The
// config space is the mount tag (tag_len[2] + tag bytes, no NUL) under feature
// VIRTIO_9P_MOUNT_TAG. Requests go to a P9Server, run concurrently on the threadpool and are
// pushed back in the order they finish; vCPU 0 only pops chains and starts work.
import type { VirtioDevice, VirtioDeviceContext } from '../device.js';
import type { DescriptorChain } from '../chain.js';
import type { Virtqueue } from '../virtqueue.js';
import { bit } from '../features.js';
import type { P9Server } from './server.js';

export const VIRTIO_ID_9P = 9;
/** Feature bit: the config space holds the mount tag. */
export const VIRTIO_9P_MOUNT_TAG = 0;
/** Queue size (Linux's 9p transport uses up to 128 descriptors per chain). */
export const VIRTIO_9P_QUEUE_SIZE = 128;
/** Chains started per notification; the transport calls again for the rest. */
const BATCH = 64;

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
    if (ctx === undefined || index !== 0) return false;
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
      this.inflight--;
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

  saveState(): unknown {
    // Open host files cannot be saved: a restored guest's 9p mount sees EBADF on its old fids.
    return { tag: this.tag };
  }

  loadState(): void { /* fids are not restored (see saveState) */ }

  /** Waits for requests under way (they write into guest RAM), then closes the export. */
  async close(): Promise<void> {
    this.generation++;
    await this.server.close();
  }
}
