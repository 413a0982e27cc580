import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkShaper, MemoryBackend, seededRandom, type ShaperTimers } from '../../lib/net/index.js';

class FakeTimers implements ShaperTimers {
  t = 0;
  private q: Array<{ at: number; seq: number; cb: () => void }> = [];
  private seq = 0;
  setTimeout(cb: () => void, ms: number): unknown {
    const e = { at: this.t + ms, seq: this.seq++, cb };
    this.q.push(e);
    return e;
  }
  clearTimeout(h: unknown): void {
    this.q = this.q.filter((e) => e !== h);
  }
  now(): number { return this.t; }
  get pending(): number { return this.q.length; }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.q.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const e = this.q[0];
      if (e === undefined || e.at > end) break;
      this.q.shift();
      this.t = e.at;
      e.cb();
    }
    this.t = end;
  }
}

function frame(id: number, len = 100): Uint8Array {
  const f = new Uint8Array(len);
  f[0] = id & 0xff;
  f[1] = id >> 8;
  return f;
}
const ids = (fs: Uint8Array[]) => fs.map((f) => f[0]! | (f[1]! << 8));

test('seeded loss is deterministic and close to the configured rate', () => {
  const run = () => {
    const inner = new MemoryBackend();
    const s = new LinkShaper(inner, { seed: 42, lossPercent: 30, timers: new FakeTimers() });
    for (let i = 0; i < 2000; i++) s.send(frame(i));
    return ids(inner.sent);
  };
  const a = run();
  assert.deepEqual(a, run());
  assert.ok(a.length > 1250 && a.length < 1550, `kept ${a.length}`);
  assert.notDeepEqual(seededRandom(1)(), seededRandom(2)());
});

test('delay holds frames for the configured time; jitter stays within bounds', () => {
  const timers = new FakeTimers();
  const inner = new MemoryBackend();
  const s = new LinkShaper(inner, { seed: 1, delayMs: 50, timers });
  s.send(frame(1));
  timers.advance(49);
  assert.equal(inner.sent.length, 0);
  timers.advance(1);
  assert.equal(inner.sent.length, 1);
  s.set({ jitterMs: 10 });
  for (let i = 0; i < 50; i++) s.send(frame(i));
  timers.advance(39.9);
  assert.equal(inner.sent.length, 1);
  timers.advance(20.2);
  assert.equal(inner.sent.length, 51);
});

test('duplicate and corrupt, per direction', () => {
  const timers = new FakeTimers();
  const inner = new MemoryBackend();
  const s = new LinkShaper(inner, { seed: 7, timers, egress: { duplicatePercent: 100 }, ingress: { corruptPercent: 100 } });
  const rx: Uint8Array[] = [];
  s.onReceive((f) => rx.push(f));
  const f = frame(9);
  s.send(f);
  assert.equal(inner.sent.length, 2);
  inner.inject(f);
  assert.equal(rx.length, 1);
  let diff = 0;
  for (let i = 0; i < f.length; i++) for (let x = rx[0]![i]! ^ f[i]!; x; x &= x - 1) diff++;
  assert.equal(diff, 1, 'exactly one bit flipped');
  assert.equal(f[0], 9, 'the original frame is untouched');
  assert.equal(s.egress.stats.duplicated, 1);
  assert.equal(s.ingress.stats.corrupted, 1);
});

test('rate limit: token bucket paces frames and tail-drops past the queue limit', () => {
  const timers = new FakeTimers();
  const inner = new MemoryBackend();
  const s = new LinkShaper(inner, { seed: 1, timers, rateBytesPerSec: 100_000, burstBytes: 1000, queueLimitBytes: 5000 });
  for (let i = 0; i < 20; i++) s.send(frame(i, 500));
  assert.equal(inner.sent.length, 2, 'burst');
  assert.equal(s.egress.stats.queueDropped, 8);
  timers.advance(50); // 5000 bytes of tokens, bucket caps at 1000 per refill step
  assert.ok(inner.sent.length >= 8 && inner.sent.length <= 12, `sent ${inner.sent.length}`);
  timers.advance(1000);
  assert.equal(inner.sent.length, 12);
  assert.deepEqual(ids(inner.sent), [...Array(12).keys()], 'order kept');
});

test('down/up propagates carrier and drops traffic; partition drops silently', () => {
  const timers = new FakeTimers();
  const inner = new MemoryBackend();
  const s = new LinkShaper(inner, { timers });
  const links: boolean[] = [];
  s.onLinkChange((u) => links.push(u));
  const rx: Uint8Array[] = [];
  s.onReceive((f) => rx.push(f));
  s.down();
  assert.equal(s.linkUp, false);
  s.send(frame(1));
  inner.inject(frame(2));
  s.up();
  inner.setLinkUp(false);
  inner.setLinkUp(true);
  assert.deepEqual(links, [false, true, false, true]);
  s.partition();
  s.send(frame(3));
  inner.inject(frame(4));
  assert.equal(s.linkUp, true);
  s.partition(false);
  s.send(frame(5));
  assert.deepEqual(ids(inner.sent), [5]);
  assert.equal(rx.length, 0);
  assert.equal(s.egress.stats.partitioned + s.ingress.stats.partitioned, 2);
});

test('close() clears every pending timer and closes the inner backend', () => {
  const timers = new FakeTimers();
  const inner = new MemoryBackend();
  const s = new LinkShaper(inner, { timers, delayMs: 100, rateBytesPerSec: 1000 });
  for (let i = 0; i < 5; i++) s.send(frame(i, 600));
  assert.ok(timers.pending > 0);
  s.close();
  assert.equal(timers.pending, 0);
  assert.equal(inner.linkUp, false);
  timers.advance(10_000);
  assert.equal(inner.sent.length, 0);
});

test('real timers: a short delay with unref timers', async () => {
  const inner = new MemoryBackend();
  const s = new LinkShaper(inner, { delayMs: 5 });
  const t0 = performance.now();
  s.send(frame(1));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(inner.sent.length, 1);
  assert.ok(performance.now() - t0 >= 5);
  s.close();
});

test('invalid impairments are refused', () => {
  assert.throws(() => new LinkShaper(new MemoryBackend(), { lossPercent: 101 }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => new LinkShaper(new MemoryBackend(), { delayMs: -1 }), { code: 'ERR_INVALID_ARG' });
});
