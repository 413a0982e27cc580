// Backpressure between a backend and the RX ring (DESIGN §7): frames the ring cannot take yet
// wait in a bounded FIFO and are retried when the driver frees room; only frames that overflow
// the FIFO are lost, and those are counted as missed (MPC).

/** What the queue needs from the NIC: try a frame; 'full' means "retry later". */
export interface RxOffer {
  tryReceive(frame: Uint8Array): string;
  countMissed(): void;
  countQueued(): void;
}

export class RxQueue {
  private readonly frames: Uint8Array[] = [];
  constructor(private readonly nic: RxOffer, private readonly limit: number) {}

  get length(): number {
    return this.frames.length;
  }

  /** A frame from the backend: straight in if nothing waits and the ring takes it. */
  push(frame: Uint8Array): void {
    if (this.frames.length === 0 && this.nic.tryReceive(frame) !== 'full') return;
    if (this.frames.length < this.limit) {
      this.frames.push(frame);
      this.nic.countQueued();
    } else {
      this.nic.countMissed();
    }
  }

  /** Retry waiting frames, oldest first, until the ring is full again. */
  flush(): void {
    while (this.frames.length > 0) {
      if (this.nic.tryReceive(this.frames[0]!) === 'full') return;
      this.frames.shift();
    }
  }

  clear(): void {
    this.frames.length = 0;
  }
}
