// A request or reply spread over several guest buffers (a virtqueue descriptor chain: the
// readable part holds the T-message, the writable part receives the R-message). These helpers
// address the chain as one byte range without copying, except where they say so.

export function totalLength(segs: readonly Uint8Array[]): number {
  let n = 0;
  for (const s of segs) n += s.byteLength;
  return n;
}

/** Views of bytes [start, start+len) of the chain (fewer bytes when the chain is shorter). */
export function sliceSegments(segs: readonly Uint8Array[], start: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = start;
  let left = len;
  for (const s of segs) {
    if (left <= 0) break;
    if (skip >= s.byteLength) { skip -= s.byteLength; continue; }
    const n = Math.min(s.byteLength - skip, left);
    out.push(s.subarray(skip, skip + n));
    left -= n;
    skip = 0;
  }
  return out;
}

/** A copy of bytes [start, start+len) of the chain (shorter when the chain is). */
export function gather(segs: readonly Uint8Array[], start: number, len: number): Uint8Array {
  const parts = sliceSegments(segs, start, len);
  if (parts.length === 1) return parts[0]!.slice();
  const out = new Uint8Array(totalLength(parts));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.byteLength; }
  return out;
}

/** Copies `bytes` into the chain at `start`; returns the bytes copied. */
export function scatter(segs: readonly Uint8Array[], start: number, bytes: Uint8Array): number {
  let at = 0;
  for (const v of sliceSegments(segs, start, bytes.byteLength)) {
    v.set(bytes.subarray(at, at + v.byteLength));
    at += v.byteLength;
  }
  return at;
}
