// QEMU's stream framing for Ethernet over a byte stream (`-netdev stream`, passt's socket): each
// frame is preceded by its length as a 4-byte big-endian integer. Nothing else is on the wire.

/**
 * The largest frame either side may send: passt's largest MTU (65520) plus an Ethernet header,
 * rounded up. A length beyond it is not a frame but a broken stream.
 */
export const MAX_STREAM_FRAME = 65536 + 14;

/** A stream frame's 4-byte length prefix followed by the frame. */
export function encodeStreamFrame(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, 4);
  return out;
}

/**
 * Cuts a byte stream into frames. Chunks may split a frame (or its length) anywhere. A length
 * of 0 or over MAX_STREAM_FRAME means the stream is out of step; the decoder then stops for
 * good and reports it, because nothing after it can be trusted to start on a frame.
 */
export class StreamFrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private broken = false;

  constructor(private readonly onFrame: (frame: Uint8Array) => void, private readonly onError: (message: string) => void) {}

  push(chunk: Buffer): void {
    if (this.broken) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    let buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len === 0 || len > MAX_STREAM_FRAME) {
        this.broken = true;
        this.pending = [];
        this.pendingBytes = 0;
        this.onError(`stream frame length ${len} is outside 1..${MAX_STREAM_FRAME}`);
        return;
      }
      if (buf.length - off - 4 < len) break;
      // A copy: the listeners may keep the frame, and the chunk's memory belongs to the socket.
      this.onFrame(Uint8Array.prototype.slice.call(buf, off + 4, off + 4 + len));
      off += 4 + len;
    }
    buf = buf.subarray(off);
    this.pending = buf.length > 0 ? [buf] : [];
    this.pendingBytes = buf.length;
  }
}
