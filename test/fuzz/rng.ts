// The fuzzers' random source: the project's seeded PRNG (lib/net/link.ts) behind the few
// helpers a generator needs. One seed reproduces a whole run; each device draws its own stream
// from (seed, device name), so replaying one device does not depend on the others.
import { seededRandom } from '../../lib/net/link.js';

const POOL_SIZE = 0x10000;

export class Rng {
  private readonly next: () => number;
  private pool: Uint8Array | undefined;

  constructor(readonly seed: number) {
    this.next = seededRandom(seed);
  }

  /** A stream for `name` under the run's `seed` (FNV-1a of the name mixed into the seed). */
  static forDevice(seed: number, name: string): Rng {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    return new Rng((seed ^ h) >>> 0);
  }

  /** [0, 1). */
  float(): number {
    return this.next();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  u8(): number {
    return Math.floor(this.next() * 0x100);
  }

  u16(): number {
    return Math.floor(this.next() * 0x1_0000);
  }

  u32(): number {
    return Math.floor(this.next() * 0x1_0000_0000);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** An access width a bus can deliver (1, 2 or 4 bytes). */
  size(): 1 | 2 | 4 {
    const r = this.next();
    return r < 0.4 ? 1 : r < 0.7 ? 2 : 4;
  }

  /** A value for an access of `size` bytes: often all-ones, zero or one bit, else uniform. */
  value(size: number): number {
    const max = size >= 4 ? 0x1_0000_0000 : 2 ** (size * 8);
    const r = this.next();
    if (r < 0.05) return max - 1;
    if (r < 0.1) return 0;
    if (r < 0.2) return 2 ** this.int(size * 8);
    return Math.floor(this.next() * max);
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = Math.floor(this.next() * 0x1_0000_0000);
      out[i] = v; out[i + 1] = v >>> 8; out[i + 2] = v >>> 16; out[i + 3] = v >>> 24;
    }
    for (; i < n; i++) out[i] = Math.floor(this.next() * 0x100);
    return out;
  }

  /**
   * `n` random-looking bytes, cheaply: a copy of a window of a 64 KiB pool drawn once per
   * stream (large frames would otherwise cost more to make than to process).
   */
  junk(n: number): Uint8Array {
    if (this.pool === undefined) this.pool = this.bytes(POOL_SIZE);
    const out = new Uint8Array(n);
    for (let at = 0; at < n;) {
      const start = this.int(POOL_SIZE);
      const take = Math.min(n - at, POOL_SIZE - start);
      out.set(this.pool.subarray(start, start + take), at);
      at += take;
    }
    return out;
  }

  /** Index into `weights` chosen in proportion to them. */
  weighted(weights: readonly number[], total: number): number {
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i]!;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}
