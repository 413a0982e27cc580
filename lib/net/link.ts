// A link shaper wrapping a backend, for fault injection in VM tests: loss, delay and jitter,
// duplication, corruption, a token-bucket rate limit, carrier down/up and partition, set per
// direction (egress = NIC to network, ingress = network to NIC). Randomness comes from a
// seedable PRNG so a test run can be replayed; every timer is unref'd and cleared by close().
import { InvalidArgumentError } from '../errors.js';
import { BackendBase, type NetBackend } from './backend.js';
import { parseSize, type Size } from '../size.js';
import { checkOptions, keysOf } from '../options-check.js';

/** What a link does to frames; every field is optional and off by default. */
export interface Impairments {
  /** Drop probability in percent (0..100). */
  lossPercent?: number;
  /** Fixed one-way delay (ms). */
  delayMs?: number;
  /** Uniform jitter added to the delay, +/- ms (frames may reorder, as with netem). */
  jitterMs?: number;
  /** Probability (percent) a frame is delivered twice. */
  duplicatePercent?: number;
  /** Probability (percent) one random bit of the frame is flipped. */
  corruptPercent?: number;
  /** Rate limit in bytes per second (token bucket); 0 or undefined = unlimited. */
  rateBytesPerSec?: Size;
  /** Bucket depth in bytes (default: one 1514-byte frame or 10 ms of rate, whichever is larger). */
  burstBytes?: Size;
  /** Bytes that may wait for tokens before tail drop (default 256 KiB). */
  queueLimitBytes?: Size;
}

/** The timers a shaper uses (injected so tests can drive time). */
export interface ShaperTimers {
  /** Run `cb` after `ms`; returns a handle for clearTimeout. */
  setTimeout(cb: () => void, ms: number): unknown;
  /** Cancel a pending setTimeout. */
  clearTimeout(handle: unknown): void;
  /** Milliseconds, monotonic. */
  now(): number;
}

/** Options of a LinkShaper: impairments for both directions, per-direction overrides, a seed. */
export interface LinkShaperOptions extends Impairments {
  /** Seed for the PRNG (deterministic runs). */
  seed?: number;
  /** Overrides for the NIC-to-network direction. */
  egress?: Impairments;
  /** Overrides for the network-to-NIC direction. */
  ingress?: Impairments;
  /** Timer source (default: the host's, unref'd). */
  timers?: ShaperTimers;
}

/** What one direction of a shaper did with the frames it saw. */
export interface DirectionStats {
  /** Frames passed on. */
  passed: number;
  /** Frames dropped by `lossPercent`. */
  lost: number;
  /** Frames delivered twice. */
  duplicated: number;
  /** Frames with a bit flipped. */
  corrupted: number;
  /** Frames that waited for rate-limit tokens. */
  queued: number;
  /** Frames dropped because the rate-limit queue was full. */
  queueDropped: number;
  /** Frames dropped during a partition. */
  partitioned: number;
  /** Frames dropped while the carrier was down. */
  noCarrier: number;
}

const hostTimers: ShaperTimers = {
  setTimeout(cb, ms) {
    const t = setTimeout(cb, ms);
    t.unref();
    return t;
  },
  clearTimeout(h) { clearTimeout(h as ReturnType<typeof setTimeout>); },
  now: () => performance.now(),
};

/** mulberry32: small, fast, good enough for fault injection. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkPercent(name: string, v: number | undefined): void {
  if (v !== undefined && !(v >= 0 && v <= 100)) throw new InvalidArgumentError(`${name} must be 0..100, got ${v}`);
}

/** Impairments with every size resolved to bytes. */
type ResolvedImpairments = Omit<Impairments, 'rateBytesPerSec' | 'burstBytes' | 'queueLimitBytes'> & {
  rateBytesPerSec?: number; burstBytes?: number; queueLimitBytes?: number;
};

const IMPAIRMENTS = keysOf<Impairments>({
  lossPercent: true, delayMs: true, jitterMs: true, duplicatePercent: true, corruptPercent: true, rateBytesPerSec: true, burstBytes: true, queueLimitBytes: true,
});

class Direction {
  cfg: ResolvedImpairments = {};
  readonly stats: DirectionStats = { passed: 0, lost: 0, duplicated: 0, corrupted: 0, queued: 0, queueDropped: 0, partitioned: 0, noCarrier: 0 };
  private tokens = 0;
  private last = 0;
  private readonly queue: Uint8Array[] = [];
  private queueBytes = 0;
  private drainTimer: unknown;

  constructor(private readonly shaper: LinkShaper, private readonly out: (f: Uint8Array) => void) {}

  configure(impairments: Impairments): void {
    checkOptions('LinkShaper impairments', impairments, IMPAIRMENTS);
    const { rateBytesPerSec, burstBytes, queueLimitBytes, ...rest } = impairments;
    const cfg: ResolvedImpairments = { ...rest };
    checkPercent('lossPercent', cfg.lossPercent);
    checkPercent('duplicatePercent', cfg.duplicatePercent);
    checkPercent('corruptPercent', cfg.corruptPercent);
    for (const k of ['delayMs', 'jitterMs'] as const) {
      const v = cfg[k];
      if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new InvalidArgumentError(`${k} must be a non-negative number`);
    }
    // Sizes: '10M' or bytes (rateBytesPerSec: bytes per second).
    if (rateBytesPerSec !== undefined) cfg.rateBytesPerSec = parseSize(rateBytesPerSec, 'rateBytesPerSec', { allowZero: true });
    if (burstBytes !== undefined) cfg.burstBytes = parseSize(burstBytes, 'burstBytes', { allowZero: true });
    if (queueLimitBytes !== undefined) cfg.queueLimitBytes = parseSize(queueLimitBytes, 'queueLimitBytes', { allowZero: true });
    this.cfg = { ...this.cfg, ...cfg };
    this.tokens = this.burst();
    this.last = this.shaper.timers.now();
  }

  private burst(): number {
    const rate = this.cfg.rateBytesPerSec ?? 0;
    return this.cfg.burstBytes ?? Math.max(1514, rate / 100);
  }

  push(frame: Uint8Array): void {
    const s = this.shaper;
    if (s.partitioned) { this.stats.partitioned++; return; }
    if (!s.carrier) { this.stats.noCarrier++; return; }
    const rnd = s.random;
    if (rnd() * 100 < (this.cfg.lossPercent ?? 0)) { this.stats.lost++; return; }
    let f = frame;
    if (f.length > 0 && rnd() * 100 < (this.cfg.corruptPercent ?? 0)) {
      f = f.slice();
      const bit = Math.floor(rnd() * f.length * 8);
      f[bit >>> 3] = f[bit >>> 3]! ^ (1 << (bit & 7));
      this.stats.corrupted++;
    }
    const copies = rnd() * 100 < (this.cfg.duplicatePercent ?? 0) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) this.shape(f);
  }

  private shape(f: Uint8Array): void {
    const rate = this.cfg.rateBytesPerSec ?? 0;
    if (rate <= 0) { this.delay(f); return; }
    this.refill(rate);
    if (this.queue.length === 0 && this.tokens >= f.length) {
      this.tokens -= f.length;
      this.delay(f);
      return;
    }
    if (this.queueBytes + f.length > (this.cfg.queueLimitBytes ?? 256 * 1024)) {
      this.stats.queueDropped++;
      return;
    }
    this.queue.push(f);
    this.queueBytes += f.length;
    this.stats.queued++;
    this.scheduleDrain(rate);
  }

  private refill(rate: number): void {
    const now = this.shaper.timers.now();
    this.tokens = Math.min(this.burst(), this.tokens + ((now - this.last) * rate) / 1000);
    this.last = now;
  }

  private scheduleDrain(rate: number): void {
    if (this.drainTimer !== undefined || this.queue.length === 0) return;
    const need = Math.max(0, this.queue[0]!.length - this.tokens);
    const ms = Math.max(1, Math.ceil((need * 1000) / rate));
    this.drainTimer = this.shaper.track(ms, () => {
      this.drainTimer = undefined;
      const r = this.cfg.rateBytesPerSec ?? 0;
      if (r <= 0) {
        // Rate limit lifted while frames waited: release them all.
        for (const q of this.queue.splice(0)) this.delay(q);
        this.queueBytes = 0;
        return;
      }
      this.refill(r);
      // A frame larger than the bucket goes once the bucket is full.
      while (this.queue.length > 0 && (this.tokens >= this.queue[0]!.length || this.tokens >= this.burst())) {
        const q = this.queue.shift()!;
        this.queueBytes -= q.length;
        this.tokens -= q.length;
        this.delay(q);
      }
      this.scheduleDrain(r);
    });
  }

  private delay(f: Uint8Array): void {
    const base = this.cfg.delayMs ?? 0;
    const jitter = this.cfg.jitterMs ?? 0;
    const ms = Math.max(0, base + (jitter > 0 ? (this.shaper.random() * 2 - 1) * jitter : 0));
    if (ms <= 0) { this.emit(f); return; }
    this.shaper.track(ms, () => this.emit(f));
  }

  private emit(f: Uint8Array): void {
    // Carrier or partition may have changed while the frame was in flight.
    if (this.shaper.partitioned) { this.stats.partitioned++; return; }
    if (!this.shaper.carrier) { this.stats.noCarrier++; return; }
    this.stats.passed++;
    this.out(f);
  }

  clear(): void {
    this.queue.length = 0;
    this.queueBytes = 0;
    this.drainTimer = undefined;
  }
}

export class LinkShaper extends BackendBase {
  /** @internal */ readonly timers: ShaperTimers;
  /** @internal */ random: () => number;
  /** @internal */ partitioned = false;
  private forcedDown = false;
  private readonly pending = new Set<unknown>();
  private readonly unsub: Array<() => void>;
  /** @internal the NIC-to-network direction */
  readonly egress: Direction;
  /** @internal the network-to-NIC direction */
  readonly ingress: Direction;

  constructor(private readonly inner: NetBackend, opts: LinkShaperOptions = {}) {
    super();
    checkOptions('LinkShaper', opts, keysOf<LinkShaperOptions>({ ...Object.fromEntries(IMPAIRMENTS.map((k) => [k, true])) as Record<keyof Impairments, true>, seed: true, egress: true, ingress: true, timers: true }));
    this.timers = opts.timers ?? hostTimers;
    this.random = seededRandom(opts.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.egress = new Direction(this, (f) => this.inner.send(f));
    this.ingress = new Direction(this, (f) => this.deliver(f));
    const { seed: _s, egress, ingress, timers: _t, ...both } = opts;
    this.egress.configure({ ...both, ...egress });
    this.ingress.configure({ ...both, ...ingress });
    this.unsub = [
      inner.onReceive((f) => this.ingress.push(f)),
      inner.onLinkChange(() => this.syncCarrier()),
    ];
    this.syncCarrier();
  }

  /** @internal carrier as the NIC sees it: the inner link and not forced down. */
  get carrier(): boolean {
    return this.inner.linkUp && !this.forcedDown && !this.closed;
  }

  /** @internal run `cb` after `ms` unless the shaper is closed first. */
  track(ms: number, cb: () => void): unknown {
    const h = this.timers.setTimeout(() => {
      this.pending.delete(h);
      if (!this.closed) cb();
    }, ms);
    this.pending.add(h);
    return h;
  }

  /** Change impairments (merged into the current ones) for one or both directions. */
  set(cfg: Impairments, direction: 'both' | 'egress' | 'ingress' = 'both'): void {
    if (direction !== 'ingress') this.egress.configure(cfg);
    if (direction !== 'egress') this.ingress.configure(cfg);
  }

  /** Pull the cable: the NIC sees carrier loss, frames in both directions are dropped. */
  down(): void {
    this.forcedDown = true;
    this.syncCarrier();
  }

  /** Plug the cable back in. */
  up(): void {
    this.forcedDown = false;
    this.syncCarrier();
  }

  /** Silently drop everything (carrier stays up), as a network partition does. */
  partition(on = true): void {
    this.partitioned = on;
  }

  /** Re-seed the PRNG. */
  seed(seed: number): void {
    this.random = seededRandom(seed);
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.egress.push(frame);
  }

  private syncCarrier(): void {
    this.setLink(this.carrier);
  }

  /** Pass the inner backend's poll on. */
  pollReceive(): void {
    this.inner.pollReceive?.();
  }

  override close(): void {
    if (this.closed) return;
    super.close();
    for (const h of this.pending) this.timers.clearTimeout(h);
    this.pending.clear();
    this.egress.clear();
    this.ingress.clear();
    for (const u of this.unsub) u();
    this.inner.close();
  }
}
