// A nanosecond-resolution pcap writer (magic 0xa1b23c4d, LINKTYPE_ETHERNET) that can wrap any
// NetBackend (recording both directions) or tap one (recording what it delivers).
import { closeSync, writeSync } from 'node:fs';
import { createUserFile } from '../user-file.js';
import { InvalidArgumentError } from '../errors.js';
import { BackendBase, type NetBackend, type TcpSegmentation } from './backend.js';
import { segmentTcp } from './tcp-segmentation.js';
import { parseSize, type Size } from '../size.js';
import { checkOptions, keysOf } from '../options-check.js';

export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const LINKTYPE_ETHERNET = 1;

/** Where a PcapWriter's bytes go, when not to a file. */
export interface PcapSink {
  /** Take the next bytes of the capture. */
  write(chunk: Uint8Array): void;
  /** The capture ended. */
  close?(): void;
}

/** Options of a PcapWriter. */
export interface PcapOptions {
  /** Bytes kept per packet (longer frames are truncated, orig_len keeps the real size). */
  snaplen?: Size;
  /** Timestamp source, nanoseconds since the Unix epoch. */
  now?: () => bigint;
}

/** Wall clock with nanosecond steps: Date.now() once, then the monotonic hrtime. */
function defaultNow(): () => bigint {
  const wall0 = BigInt(Date.now()) * 1_000_000n;
  const mono0 = process.hrtime.bigint();
  return () => wall0 + (process.hrtime.bigint() - mono0);
}

class FileSink implements PcapSink {
  private fd: number | undefined;
  constructor(path: string) {
    this.fd = createUserFile(path, 'pcap file');
  }
  write(chunk: Uint8Array): void {
    if (this.fd === undefined) return;
    let off = 0;
    while (off < chunk.length) off += writeSync(this.fd, chunk, off, chunk.length - off);
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Writes Ethernet frames as a pcap capture (nanosecond timestamps) that Wireshark and tcpdump
 * read. `new PcapWriter(file).wrap(backend)` gives a backend that records what passes through it.
 */
export class PcapWriter {
  private readonly sink: PcapSink;
  private readonly snaplen: number;
  private readonly now: () => bigint;
  private ended = false;
  /** Frames written so far. */
  packets = 0;

  /** `target`: a file path (created/truncated) or a sink receiving the byte stream. */
  constructor(target: string | PcapSink, opts: PcapOptions = {}) {
    checkOptions('PcapWriter', opts, keysOf<PcapOptions>({ snaplen: true, now: true }));
    const snaplen = parseSize(opts.snaplen ?? 262144, 'snaplen');
    if (snaplen < 14 || snaplen > 0x7fffffff) throw new InvalidArgumentError(`snaplen must be 14 to 2^31-1 bytes, got ${snaplen}`, 'ERR_INVALID_ARG');
    this.snaplen = snaplen;
    this.now = opts.now ?? defaultNow();
    this.sink = typeof target === 'string' ? new FileSink(target) : target;
    const h = new DataView(new ArrayBuffer(24));
    h.setUint32(0, PCAP_MAGIC_NS, true);
    h.setUint16(4, 2, true);
    h.setUint16(6, 4, true);
    h.setInt32(8, 0, true); // thiszone
    h.setUint32(12, 0, true); // sigfigs
    h.setUint32(16, snaplen, true);
    h.setUint32(20, LINKTYPE_ETHERNET, true);
    try {
      this.sink.write(new Uint8Array(h.buffer));
    } catch (e) {
      // A file we opened is ours to close when the constructor fails (ENOSPC, EIO).
      if (typeof target === 'string') this.sink.close?.();
      throw e;
    }
  }

  /** Append one frame, stamped `tsNs` (default: now). */
  write(frame: Uint8Array, tsNs: bigint = this.now()): void {
    if (this.ended) return;
    const incl = Math.min(frame.length, this.snaplen);
    const rec = new Uint8Array(16 + incl);
    const d = new DataView(rec.buffer);
    d.setUint32(0, Number(tsNs / 1_000_000_000n), true);
    d.setUint32(4, Number(tsNs % 1_000_000_000n), true);
    d.setUint32(8, incl, true);
    d.setUint32(12, frame.length, true);
    rec.set(frame.subarray(0, incl), 16);
    this.sink.write(rec);
    this.packets++;
  }

  /** A backend that behaves like `inner` and records every frame sent and received. */
  wrap(inner: NetBackend): NetBackend {
    return new CapturingBackend(inner, this);
  }

  /** Record every frame `backend` delivers (its receive side). Returns an unsubscribe. */
  tap(backend: NetBackend): () => void {
    return backend.onReceive((f) => this.write(f));
  }

  /** True once close() was called: frames are no longer recorded. */
  get closed(): boolean {
    return this.ended;
  }

  /** Stop recording and close the file or sink. Idempotent. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.close?.();
  }
}

class CapturingBackend extends BackendBase {
  private readonly unsub: Array<() => void>;
  constructor(private readonly inner: NetBackend, private readonly pcap: PcapWriter) {
    super();
    this.setLink(inner.linkUp);
    this.unsub = [
      inner.onReceive((f, flags) => { this.pcap.write(f); this.deliver(f, flags); }),
      inner.onLinkChange((up) => this.setLink(up)),
    ];
  }
  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.pcap.write(frame);
    this.inner.send(frame);
  }
  pollReceive(): void {
    this.inner.pollReceive?.();
  }
  pauseReceive(): void {
    this.inner.pauseReceive?.();
  }
  resumeReceive(): void {
    this.inner.resumeReceive?.();
  }
  /**
   * Pass a TSO frame on whole if the wrapped backend takes it so, and record the segments it
   * stands for (what the wire carries, checksums complete), as if the NIC had cut it.
   */
  sendSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
    if (this.inner.sendSegmented === undefined) return false;
    if (this.closed) return true;
    if (!this.inner.sendSegmented(frame, tso)) return false;
    // Cutting the frame only to record it: not once the capture is closed.
    if (!this.pcap.closed) for (const seg of segmentTcp(frame, tso.mss) ?? [frame]) this.pcap.write(seg);
    return true;
  }
  override close(): void {
    if (this.closed) return;
    super.close();
    for (const u of this.unsub) u();
    this.inner.close();
  }
}
