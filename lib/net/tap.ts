// A TAP interface as a NetBackend (DESIGN §7): frames the NIC sends are written to the TAP fd,
// frames the host stack routes to the TAP arrive through libuv (native/tap.cc) in batches and
// go to the receive listeners. Opening needs CAP_NET_ADMIN, unless an administrator created a
// persistent TAP owned by this user (`ip tuntap add dev NAME mode tap user $USER`).
import { InvalidArgumentError, KvmError, NodeKvmError } from '../errors.js';
import { native } from '../native.js';
import { BackendBase, type TcpSegmentation } from './backend.js';
import { finishReceiveOffload, receiveOffloadSegmenter, RX_CHECKSUMS_VALID, type VnetHeaderLayout } from './receive-offload.js';
import { TcpSegmenter } from './tcp-segmentation.js';
import { parseSize, type Size } from '../size.js';
import { checkOptions, keysOf } from '../options-check.js';

/** Options of TapBackend.open(). */
export interface TapOptions {
  /**
   * Interface name (at most 15 bytes). Omitted or '': the kernel picks the next free `tapN`.
   * A kernel template such as 'nkvm%d' is allowed. An existing persistent TAP of that name is
   * attached to (and left in place on close); a new one disappears when the backend closes.
   */
  name?: string;
  /** Keep the event loop alive while the TAP is open, like a listening socket (default true). */
  ref?: boolean;
  /**
   * Hand TSO frames to the host stack whole, as GSO packets behind a virtio-net header
   * (IFF_VNET_HDR), instead of having the NIC cut them into segments first (default true).
   */
  segmentationOffload?: boolean;
  /**
   * Let the host stack hand over TCP/IPv4 super-frames of up to 64 KiB and frames with the
   * TCP/UDP checksum left to finish (TUNSETOFFLOAD: TUN_F_TSO4 | TUN_F_CSUM), which this backend
   * cuts and finishes before delivering wire frames. It spares the host's per-segment work and
   * most of the reads; the frames delivered are the same. Needs the virtio-net header, so it is
   * off when segmentationOffload is false (default: on with it).
   */
  receiveOffload?: boolean;
  /**
   * Write frames from a native thread (default false: each send writes the fd on the calling
   * thread). The NIC's transmit then returns once the frame is copied into a bounded queue,
   * instead of running the host's receive path for it (IP, TCP, the reader's wake-up, often
   * its ACK) inside the guest's exit. In the one-CPU lab that made transfers 20–30% slower:
   * the ACK the write provokes then reaches the guest through a kick and an event-loop turn
   * instead of being read back inside the same exit (docs/benchmarks.md).
   */
  writeThread?: boolean;
  /** Bytes the writer thread may hold queued (default 4 MiB); a frame beyond it is dropped. */
  writeQueueBytes?: Size;
}

/** Counters of a TapBackend (`tap.stats`). */
export interface TapStats {
  /** Frames read from the TAP (a super-frame counts once; see rxSegmented). */
  rxFrames: number;
  /** Bytes of the frames read. */
  rxBytes: number;
  /** Of rxFrames, the TCP super-frames cut into wire frames here, and the frames they made. */
  rxSegmented: number;
  /** Wire frames cut from rxSegmented super-frames. */
  rxSegments: number;
  /** Frames whose TCP/UDP checksum the host left for us, finished here. */
  rxChecksummed: number;
  /** Frames whose offload request made no sense (dropped). */
  rxOffloadErrors: number;
  /** Frames read but held back: the listener paused us in the middle of a batch. */
  rxHeld: number;
  /** Reads from libuv: each delivers up to 64 frames in one native-to-JS call. */
  rxBatches: number;
  /** Read errors; reading stops after one (the interface was deleted, e.g. with its netns). */
  rxErrors: number;
  /**
   * Frames written; a TSO frame handed over whole counts once (see txSegmented). With the
   * writer thread, frames it has written so far (frames still queued at close are discarded).
   */
  txFrames: number;
  /** Bytes of the frames written. */
  txBytes: number;
  /** Of txFrames, the TSO frames written whole (GSO), and the segments they made. */
  txSegmented: number;
  /** Segments the txSegmented frames made on the wire. */
  txSegments: number;
  /** Frames not sent: kernel queue full, host side of the TAP down, or our link down. */
  txDropped: number;
  /** Frames refused as malformed (shorter than an Ethernet header) or failed writes. */
  txErrors: number;
}

interface WriterCounts { frames: number; bytes: number; dropped: number; errors: number }

/** TapOptions.writeQueueBytes by default: 64 of the largest frames. */
const DEFAULT_WRITE_QUEUE_BYTES = 4 * 1024 * 1024;
const ETH_HLEN = 14;
/** Offset of the checksum field in a TCP header (RFC 793). */
const TCP_CHECKSUM_OFFSET = 16;
const IFNAMSIZ = 16;
/** Segments of a super-frame cut at once while the listener takes them. */
const SEGMENTS_PER_CUT = 32;

function validateName(name: string): void {
  if (Buffer.byteLength(name) >= IFNAMSIZ)
    throw new InvalidArgumentError(`TAP name '${name}' is longer than ${IFNAMSIZ - 1} bytes`);
  if (name === '.' || name === '..' || /[/:\s]/.test(name))
    throw new InvalidArgumentError(`TAP name '${name}' is not a valid interface name`);
}

const SETCAP_HINT = "run as root, or grant node the capability with 'sudo setcap cap_net_admin+ep $(which node)'";

/** Turn the shim's errno errors into the three failures a user can act on. */
function openError(e: unknown, name: string): unknown {
  if (!(e instanceof KvmError)) return e;
  const label = name === '' ? 'a TAP interface' : `TAP interface '${name}'`;
  const opts = { cause: e };
  if (e.syscall === 'open') {
    if (e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'ENXIO')
      return new NodeKvmError('ERR_TAP_UNAVAILABLE',
        `cannot open ${label}: /dev/net/tun is missing (${e.code}); load the driver with 'modprobe tun' ` +
        '(in a container, pass the device through, e.g. --device /dev/net/tun)', opts);
    if (e.code === 'EACCES' || e.code === 'EPERM')
      return new NodeKvmError('ERR_TAP_PERMISSION',
        `cannot open /dev/net/tun (${e.code}): creating a TAP needs CAP_NET_ADMIN and access to /dev/net/tun; ${SETCAP_HINT}`, opts);
  }
  if (e.syscall === 'TUNSETIFF') {
    if (e.code === 'EPERM')
      return new NodeKvmError('ERR_TAP_PERMISSION',
        `cannot create ${label} (EPERM): this needs CAP_NET_ADMIN; ${SETCAP_HINT}; or have an administrator ` +
        `create it for your user: 'ip tuntap add dev ${name === '' ? 'NAME' : name} mode tap user $USER'`, opts);
    if (e.code === 'EBUSY')
      return new NodeKvmError('ERR_TAP_BUSY', `${label} is already in use (attached by another process or backend)`, opts);
    if (e.code === 'EINVAL' && name !== '')
      return new NodeKvmError('ERR_TAP_BUSY', `interface '${name}' already exists and is not a TAP device`, opts);
  }
  return e;
}

export class TapBackend extends BackendBase {
  /** The interface name the kernel gave (resolves '' and '%d' templates). */
  readonly name: string;
  /** True when we attached to an administrator's persistent TAP (it outlives close()). */
  readonly persistent: boolean;
  private readonly counts: TapStats = {
    rxFrames: 0, rxBytes: 0, rxSegmented: 0, rxSegments: 0, rxChecksummed: 0, rxOffloadErrors: 0, rxHeld: 0,
    rxBatches: 0, rxErrors: 0,
    txFrames: 0, txBytes: 0, txSegmented: 0, txSegments: 0, txDropped: 0, txErrors: 0,
  };
  /** Whether a native writer thread does the writes (TapOptions.writeThread). */
  private threaded = false;
  /** The writer thread's counters, kept when the TAP closes. */
  private writerFinal: WriterCounts | undefined;
  private fd: number;
  private paused = false;
  /** A batch is being delivered: its frames are views of the read buffer that a read would overwrite. */
  private reading = false;
  /**
   * Wire frames read but not delivered (paused mid-batch), with their RX flags; at most one
   * batch. A super-frame not cut yet waits as its segmenter: cutting is done as frames are
   * delivered, so a paused listener never costs the cutting of a whole batch at once.
   */
  private held: Array<Uint8Array | TcpSegmenter> = [];
  private heldFlags: number[] = [];
  private heldAt = 0;
  /** The virtio-net header's layout when receive offloads are on; its length before each frame. */
  private readonly rxOffload: VnetHeaderLayout | undefined;
  private readonly vnetHdrLen: number;
  /** virtio-net header for plain frames (all zero), or undefined without IFF_VNET_HDR. */
  private readonly plainHeader: Uint8Array | undefined;
  /** Reused header for GSO frames: flags, type and checksum offset set once, sizes per frame. */
  private readonly gsoHeader: Uint8Array | undefined;
  private readonly gsoView: DataView | undefined;

  /** Open (or create) a TAP interface and start reading it. */
  static open(options: TapOptions = {}): TapBackend {
    // Every option is checked before the fd exists, so a bad one leaves nothing to close.
    checkOptions('TapBackend.open', options, keysOf<TapOptions>({ name: true, ref: true, segmentationOffload: true, receiveOffload: true, writeThread: true, writeQueueBytes: true }));
    const bytes = parseSize(options.writeQueueBytes ?? DEFAULT_WRITE_QUEUE_BYTES, 'writeQueueBytes');
    if (bytes < 0x10000 + 64) {
      throw new InvalidArgumentError(`writeQueueBytes must be at least ${0x10000 + 64} (one largest frame), got ${bytes}`, 'ERR_INVALID_ARG');
    }
    const name = options.name ?? '';
    validateName(name);
    const n = native();
    let opened: { fd: number; name: string; persistent: boolean; vnetHdrLen: number; offloads: number };
    const vnet = options.segmentationOffload !== false;
    const offloads = vnet && options.receiveOffload !== false ? n.constants.TUN_F_CSUM! | n.constants.TUN_F_TSO4! : 0;
    try {
      opened = n.tapOpen(name, vnet ? n.constants.IFF_VNET_HDR : 0, offloads);
    } catch (e) {
      throw openError(e, name);
    }
    let tap: TapBackend;
    try {
      tap = new TapBackend(opened.fd, opened.name, opened.persistent, opened.vnetHdrLen, opened.offloads !== 0);
      n.tapStartReading(opened.fd, (frames, errno) => tap.onFrames(frames, errno), opened.vnetHdrLen);
    } catch (e) {
      n.tapClose(opened.fd);
      throw e;
    }
    if (options.writeThread === true) {
      try {
        n.tapWriterStart(opened.fd, bytes);
      } catch (e) {
        tap.close();
        throw e;
      }
      tap.threaded = true;
    }
    if (options.ref === false) tap.unref();
    return tap;
  }

  private constructor(fd: number, name: string, persistent: boolean, vnetHdrLen: number, rxOffload: boolean) {
    super();
    this.fd = fd;
    this.name = name;
    this.persistent = persistent;
    this.vnetHdrLen = vnetHdrLen;
    this.rxOffload = rxOffload ? native().layout.virtio_net_hdr as unknown as VnetHeaderLayout : undefined;
    // The kernel's header may be longer than struct virtio_net_hdr (TUNSETVNETHDRSZ); the
    // fields we fill are at the front and the rest stays zero.
    const V = native().layout.virtio_net_hdr;
    if (vnetHdrLen >= V.size!) {
      const c = native().constants;
      this.plainHeader = new Uint8Array(vnetHdrLen);
      const h = new Uint8Array(vnetHdrLen);
      this.gsoHeader = h;
      this.gsoView = new DataView(h.buffer);
      // Little-endian: a TAP's header is in the host's byte order unless TUNSETVNETBE says otherwise.
      h[V.flags!] = c.VIRTIO_NET_HDR_F_NEEDS_CSUM!;
      h[V.gso_type!] = c.VIRTIO_NET_HDR_GSO_TCPV4!;
      this.gsoView.setUint16(V.csum_offset!, TCP_CHECKSUM_OFFSET, true);
    }
  }

  /** Counters; with the writer thread, its writes and losses so far are included. */
  get stats(): TapStats {
    const w = this.threaded ? (this.closed ? this.writerFinal : native().tapWriterStats(this.fd)) : undefined;
    if (w === undefined) return { ...this.counts };
    const c = this.counts;
    return { ...c, txFrames: c.txFrames + w.frames, txBytes: c.txBytes + w.bytes,
      txDropped: c.txDropped + w.dropped, txErrors: c.txErrors + w.errors };
  }

  /**
   * Wait (at most a second) until the writer thread has written every frame sent so far; a
   * no-op without one. Anything the host stack answered inside those writes is then ready for
   * pollReceive().
   */
  flushWrites(): void {
    if (this.threaded && !this.closed) native().tapWriterStats(this.fd);
  }

  /** Whether sendSegmented() hands TSO frames to the kernel whole. */
  get segmentationOffload(): boolean {
    return this.gsoHeader !== undefined;
  }

  /** Whether receive offloads are on (TapOptions.receiveOffload and a kernel that took them). */
  get receiveOffload(): boolean {
    return this.rxOffload !== undefined;
  }

  /**
   * A batch from the shim. Its frames are views of the shim's read buffer, which the next read
   * fills again: what is delivered or held is a copy (a super-frame's segments are new anyway),
   * and no read may happen while the batch is walked (pollReceive() waits for it to end).
   */
  private onFrames(frames: Uint8Array[], errno: number): void {
    if (this.closed) return;
    this.reading = true;
    try {
      this.deliverBatch(frames);
    } finally {
      this.reading = false;
    }
    if (errno !== 0 && !this.closed) {
      // The interface went away under the fd (deleted, or its netns destroyed): no carrier.
      this.counts.rxErrors++;
      this.setLink(false);
    }
  }

  private deliverBatch(frames: Uint8Array[]): void {
    if (frames.length > 0) {
      this.counts.rxBatches++;
      const L = this.rxOffload;
      // Every frame of a batch is a view of one buffer, its virtio-net header just before it.
      const all = L === undefined ? undefined : new Uint8Array(frames[0]!.buffer);
      for (const f of frames) {
        this.counts.rxFrames++;
        this.counts.rxBytes += f.length;
        if (all === undefined || L === undefined) {
          this.offer(f.slice(), 0);
        } else {
          const at = f.byteOffset - this.vnetHdrLen;
          const seg = receiveOffloadSegmenter(f, all, at, L);
          if (seg !== undefined) {
            if ('error' in seg) {
              this.counts.rxOffloadErrors++;
              continue;
            }
            this.counts.rxSegmented++;
            this.counts.rxSegments += seg.total;
            this.offerSegments(seg);
            if (this.closed) return;
            continue;
          }
          const r = finishReceiveOffload(f, all, at, L);
          if ('error' in r) {
            this.counts.rxOffloadErrors++;
            continue;
          }
          if (r.kind === 'checksummed') this.counts.rxChecksummed++;
          this.offer(f.slice(), r.flags); // still a view of the read buffer
        }
        if (this.closed) return; // a listener closed us mid-batch
      }
    }
  }

  /**
   * Deliver a super-frame's segments a few at a time; once a listener pauses us, the rest
   * waits uncut (its segmenter is held, over a copy: the super-frame is in the read buffer).
   */
  private offerSegments(seg: TcpSegmenter): void {
    while (!seg.done) {
      if (this.paused || this.heldAt < this.held.length) {
        this.held.push(seg.detached());
        this.heldFlags.push(RX_CHECKSUMS_VALID);
        this.counts.rxHeld += seg.total - seg.next;
        return;
      }
      for (const s of seg.cut(SEGMENTS_PER_CUT)) {
        this.offer(s, RX_CHECKSUMS_VALID);
        if (this.closed) return;
      }
    }
  }

  /** Deliver a wire frame, or hold it when a listener has paused us (see pauseReceive). */
  private offer(frame: Uint8Array, flags: number): void {
    if (this.paused || this.heldAt < this.held.length) {
      this.held.push(frame);
      this.heldFlags.push(flags);
      this.counts.rxHeld++;
      return;
    }
    this.deliver(frame, flags);
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    if (!this.linkUp) {
      this.counts.txDropped++;
      return;
    }
    if (frame.length < ETH_HLEN) {
      this.counts.txErrors++;
      return;
    }
    this.write(frame, this.plainHeader);
  }

  /**
   * A TSO frame as one GSO packet: the virtio-net header asks the kernel to finish the TCP
   * checksum (NEEDS_CSUM at the TCP checksum field) and to treat the frame as TCPv4 segments of
   * `mss`; a local socket then receives it without it ever being cut, and anything that
   * forwards it segments it in the kernel. False without IFF_VNET_HDR: the NIC segments.
   */
  sendSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
    const h = this.gsoHeader;
    const dv = this.gsoView;
    if (h === undefined || dv === undefined) return false;
    const { mss, l4Offset, headerLength } = tso;
    // The header's fields are 16 bits: refuse what they cannot say rather than truncate it.
    if (!Number.isInteger(mss) || mss < 1 || mss > 0xffff || !Number.isInteger(l4Offset) || l4Offset < ETH_HLEN ||
      !Number.isInteger(headerLength) || headerLength < l4Offset + 20 || headerLength > Math.min(frame.length, 0xffff))
      throw new InvalidArgumentError(`TAP ${this.name}: bad TCP segmentation request ${JSON.stringify(tso)} for a ${frame.length}-byte frame`);
    if (this.closed) return true;
    if (!this.linkUp) {
      this.counts.txDropped++;
      return true;
    }
    const V = native().layout.virtio_net_hdr;
    dv.setUint16(V.hdr_len!, headerLength, true);
    dv.setUint16(V.gso_size!, mss, true);
    dv.setUint16(V.csum_start!, l4Offset, true);
    if (this.write(frame, h)) {
      this.counts.txSegmented++;
      this.counts.txSegments += tso.segments;
    }
    return true;
  }

  /** One write of header + frame, counted; true if the kernel (or the writer's queue) took it. */
  private write(frame: Uint8Array, header: Uint8Array | undefined): boolean {
    if (this.threaded) return this.queue(frame, header);
    let n: number;
    try {
      n = native().tapWrite(this.fd, frame, header);
    } catch (e) {
      if (e instanceof KvmError && e.code === 'EIO') {
        this.counts.txDropped++; // host side of the TAP is administratively down
        return false;
      }
      this.counts.txErrors++;
      if (e instanceof KvmError && (e.code === 'EBADFD' || e.code === 'EBADF')) this.setLink(false);
      return false;
    }
    if (n < 0) {
      this.counts.txDropped++;
      return false;
    }
    this.counts.txFrames++;
    this.counts.txBytes += n - (header?.length ?? 0);
    return true;
  }

  /** Hand header + frame to the writer thread, which counts what it writes and loses. */
  private queue(frame: Uint8Array, header: Uint8Array | undefined): boolean {
    const r = native().tapWriteQueued(this.fd, frame, header);
    if (r > 0) return true;
    // r < 0: the writer met EBADFD (the interface went away under the fd): no carrier.
    if (r < 0) this.setLink(false);
    return false;
  }

  /** Deliver what the TAP already holds without waiting for libuv (see NetBackend.pollReceive). */
  pollReceive(): void {
    if (this.closed || this.paused || this.reading) return;
    const frames = native().tapReadNow(this.fd);
    const errno = frames.errno ?? 0;
    if (frames.length > 0 || errno !== 0) this.onFrames(frames, errno);
  }

  /**
   * Stop reading (backpressure): the kernel queues frames for the TAP (txqueuelen, 1000 by
   * default) and drops the rest, counting them as the interface's TX drops. Frames of the batch
   * being delivered when a listener pauses us are held and come first on resume.
   */
  pauseReceive(): void {
    if (this.closed || this.paused) return;
    this.paused = true;
    native().tapStopReading(this.fd);
  }

  /** Resume after pauseReceive(): held frames first (a listener may pause us again), then reading. */
  resumeReceive(): void {
    if (this.closed || !this.paused) return;
    this.paused = false;
    while (this.heldAt < this.held.length) {
      const i = this.heldAt;
      const h = this.held[i]!;
      if (h instanceof TcpSegmenter) {
        // One segment at a time: a pause may come after any of them.
        while (!h.done) {
          this.deliver(h.cut(1)[0]!, this.heldFlags[i]!);
          if (this.closed || this.paused) return;
        }
        this.heldAt++;
        continue;
      }
      this.heldAt++;
      this.deliver(h, this.heldFlags[i]!);
      if (this.closed || this.paused) return;
    }
    this.held = [];
    this.heldFlags = [];
    this.heldAt = 0;
    native().tapStartReading(this.fd, (frames, errno) => this.onFrames(frames, errno), this.vnetHdrLen);
  }

  /** Let the process exit while the TAP is open (reading goes on while anything else runs). */
  unref(): this {
    if (!this.closed) native().tapSetRef(this.fd, false);
    return this;
  }

  /** Undo unref(): the open TAP keeps the event loop alive again. */
  ref(): this {
    if (!this.closed) native().tapSetRef(this.fd, true);
    return this;
  }

  /** Stop reading, close the fd (a non-persistent interface disappears with it). Idempotent. */
  override close(): void {
    if (this.closed) return;
    super.close();
    const fd = this.fd;
    this.fd = -1;
    if (this.threaded) this.writerFinal = native().tapWriterStats(fd);
    native().tapClose(fd);
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
