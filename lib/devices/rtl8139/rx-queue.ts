// Backpressure between a backend and the RX ring (DESIGN §7): frames the ring cannot take yet
// wait in a bounded FIFO and are retried when the driver frees room; only frames that overflow
// the FIFO are lost, and those are counted as missed (MPC). Once `pauseAt` frames wait, the
// backend is asked to stop delivering (a TAP then leaves frames in the kernel's queue, where the
// host's TCP sees them as queued, not lost), and to go on once the FIFO has drained.

/** What the queue needs from the NIC: try a frame; 'full' means "retry later". */
export interface RxOffer {
  tryReceive(frame: Uint8Array, flags: number): string;
  countMissed(): void;
  countQueued(): void;
  /** Ask the backend to pause (true) or resume (false) delivering. */
  backpressure(pause: boolean): void;
}

/** Frames waiting before the backend is paused: a TAP's batch can still add its rest. */
export const DEFAULT_PAUSE_AT = 16;

export class RxQueue {
  private readonly frames: Uint8Array[] = [];
  /** The backend's RX flags of each waiting frame (FrameListener's `flags`). */
  private readonly flags: number[] = [];
  private paused = false;

  constructor(private readonly nic: RxOffer, private readonly limit: number, private readonly pauseAt = Math.min(DEFAULT_PAUSE_AT, limit)) {}

  get length(): number {
    return this.frames.length;
  }

  /** Whether the backend was asked to pause and not yet to resume. */
  get backendPaused(): boolean {
    return this.paused;
  }

  /** A frame from the backend: straight in if nothing waits and the ring takes it. */
  push(frame: Uint8Array, flags = 0): void {
    if (this.frames.length === 0 && this.nic.tryReceive(frame, flags) !== 'full') return;
    if (this.frames.length < this.limit) {
      this.frames.push(frame);
      this.flags.push(flags);
      this.nic.countQueued();
      if (!this.paused && this.frames.length >= this.pauseAt) {
        this.paused = true;
        this.nic.backpressure(true);
      }
    } else {
      this.nic.countMissed();
    }
  }

  /** Retry waiting frames, oldest first, until the ring is full again; resume a drained backend. */
  flush(): void {
    while (this.frames.length > 0) {
      if (this.nic.tryReceive(this.frames[0]!, this.flags[0]!) === 'full') return;
      this.frames.shift();
      this.flags.shift();
    }
    if (this.paused) {
      // Last: resuming may deliver the backend's held frames straight into push().
      this.paused = false;
      this.nic.backpressure(false);
    }
  }

  /** Forget waiting frames (the backend is being detached; it is not told to resume). */
  clear(): void {
    this.frames.length = 0;
    this.flags.length = 0;
    this.paused = false;
  }
}
