// The NetBackend contract between a NIC model and whatever carries its frames: a TAP device
// (native, added by the machine layer), a port of the in-process switch, a shaper or capture
// wrapping another backend, or one end of a pipe.
//
// Frames are whole Ethernet frames without FCS. A frame handed to a receive listener belongs
// to the backend: listeners must not modify it (copy first), since one frame may be delivered
// to several listeners or ports.

/**
 * `flags`: RX_CHECKSUMS_VALID (lib/net/receive-offload.ts) when the backend vouches for the
 * frame's checksums; 0 otherwise. A wrapper that may change frames passes 0 on.
 */
export type FrameListener = (frame: Uint8Array, flags: number) => void;
/** Called when the carrier goes up or down. */
export type LinkListener = (up: boolean) => void;

/**
 * A TCP/IPv4 frame a NIC was asked to segment (TSO, the RTL8139C+'s LargeSend), handed over
 * whole so that whoever is downstream cuts it, or never needs to (a host stack takes it as one
 * GSO packet). Offsets count from the start of the frame. The frame follows Linux's
 * CHECKSUM_PARTIAL convention: its IPv4 header is complete (total length and checksum) and the
 * TCP checksum field holds the folded, uncomplemented pseudo-header sum over the whole TCP
 * length; each segment's checksum is finished downstream.
 */
export interface TcpSegmentation {
  /** Payload bytes per segment (the descriptor's MSS). */
  mss: number;
  /** Offset of the TCP header. */
  l4Offset: number;
  /** Ethernet + IPv4 + TCP header bytes: the payload starts here. */
  headerLength: number;
  /** Segments the frame makes on the wire: the payload divided by `mss`, rounded up. */
  segments: number;
}

/**
 * What carries a NIC's frames: a TapBackend, a SwitchPort, a LinkShaper or PcapWriter wrapping
 * another backend, one end of createPipe(), or your own. Frames are whole Ethernet frames
 * without FCS; a frame handed to a listener belongs to the backend (copy before keeping it).
 */
export interface NetBackend {
  /** Transmit a frame from the NIC side. Ignored (dropped) after close() or while link is down. */
  send(frame: Uint8Array): void;
  /** Subscribe to frames arriving for the NIC. Returns an unsubscribe function. */
  onReceive(listener: FrameListener): () => void;
  /** Carrier state as the NIC's PHY should report it. */
  readonly linkUp: boolean;
  /** Subscribe to carrier changes. Returns an unsubscribe function. */
  onLinkChange(listener: LinkListener): () => void;
  /**
   * Optional: deliver frames that are already waiting, now. A NIC calls it right after it
   * transmits, because a host stack often answers inside the send (a TCP ACK, or the data an
   * ACK released): picking the answer up at once saves the guest a trip back in and a kick
   * out again before it sees it. Backends that deliver synchronously need not implement it.
   */
  pollReceive?(): void;
  /**
   * Optional: take a frame that needs TCP segmentation whole (see TcpSegmentation), sent or
   * dropped with a counter. Returns false when this backend cannot, and the NIC then segments
   * the frame itself and calls send() per segment. A TAP implements it (one write instead of
   * one per segment, and no checksums computed here); a capture passes the frame on and
   * records its segments; the shaper and the switch do not implement it, so they always see
   * real segments.
   */
  sendSegmented?(frame: Uint8Array, tso: TcpSegmentation): boolean;
  /**
   * Optional backpressure: stop delivering frames until resumeReceive(). A NIC whose ring and
   * hold-back queue are filling calls it; the backend keeps what it already read (a TAP leaves
   * the rest in the kernel's queue, which the host's TCP paces itself by). Frames the backend
   * cannot hold are dropped with a counter.
   */
  pauseReceive?(): void;
  /** Deliver held frames, then read again. */
  resumeReceive?(): void;
  /**
   * Optional: settles once the backend can carry frames (a helper process started, its ports
   * bound); rejects with a coded error if it cannot. Machine.create waits for it.
   */
  readonly ready?: Promise<void>;
  /**
   * Optional: subscribe to the backend failing for good after it was ready (its helper process
   * died). The link goes down first. A Machine re-emits it as 'net-error'.
   */
  onFailure?(listener: (error: Error) => void): () => void;
  /** Release resources (fds, timers). Idempotent. */
  close(): void;
}

/** Listener bookkeeping shared by the TS backends. */
export abstract class BackendBase implements NetBackend {
  private readonly rx = new Set<FrameListener>();
  private readonly link = new Set<LinkListener>();
  private carrierUp = true;
  protected closed = false;

  abstract send(frame: Uint8Array): void;

  get linkUp(): boolean {
    return this.carrierUp && !this.closed;
  }

  onReceive(listener: FrameListener): () => void {
    this.rx.add(listener);
    return () => { this.rx.delete(listener); };
  }

  onLinkChange(listener: LinkListener): () => void {
    this.link.add(listener);
    return () => { this.link.delete(listener); };
  }

  /** Hand a frame to the receive listeners. */
  protected deliver(frame: Uint8Array, flags = 0): void {
    if (this.closed) return;
    for (const l of this.rx) l(frame, flags);
  }

  /** Change carrier and notify listeners if it changed. */
  protected setLink(up: boolean): void {
    if (up === this.carrierUp) return;
    this.carrierUp = up;
    if (this.closed) return;
    for (const l of this.link) l(up);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rx.clear();
    this.link.clear();
  }
}

/** One end of a pipe: what one end sends, the other receives (synchronously). */
class PipeEnd extends BackendBase {
  peer: PipeEnd | undefined;
  send(frame: Uint8Array): void {
    if (this.closed || !this.linkUp) return;
    this.peer?.receiveFromPeer(frame);
  }
  receiveFromPeer(frame: Uint8Array): void {
    this.deliver(frame);
  }
  setCarrier(up: boolean): void {
    this.setLink(up);
  }
  override close(): void {
    if (this.closed) return;
    super.close();
    this.peer?.setCarrier(false);
  }
}

/** A back-to-back cable between two NICs (or a NIC and a test). */
export function createPipe(): [NetBackend, NetBackend] {
  const a = new PipeEnd();
  const b = new PipeEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A backend with carrier that drops everything sent (an unplugged-but-linked port). */
export class NullBackend extends BackendBase {
  /** Frames dropped so far. */
  sent = 0;
  send(): void {
    this.sent++;
  }
}

/** A backend for tests: records sent frames, lets the test inject frames and flip carrier. */
export class MemoryBackend extends BackendBase {
  /** Copies of every frame the NIC sent. */
  readonly sent: Uint8Array[] = [];
  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.sent.push(frame.slice());
  }
  /** Deliver `frame` to the NIC. */
  inject(frame: Uint8Array): void {
    this.deliver(frame);
  }
  /** Set the carrier the NIC sees. */
  setLinkUp(up: boolean): void {
    this.setLink(up);
  }
}
