// The lab's freeze watch: it pokes L1's console when QEMU's CPU use drops, and once a period
// whatever the CPU. Run against this test process as "QEMU" and a recording console.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { watchForFreeze } from '../../lib/lab/freeze-watch.js';

function recorder(): { socket: Socket; writes: string[] } {
  const writes: string[] = [];
  const socket = { destroyed: false, write: (d: string) => { writes.push(d); return true; } } as unknown as Socket;
  return { socket, writes };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('an idle process is poked once its window has passed, not before', async () => {
  const { socket, writes } = recorder();
  const lines: string[] = [];
  // This process idles in sleep(): far below 90% of a CPU over a 100 ms window.
  const w = watchForFreeze(process.pid, () => socket, (l) => lines.push(l), 100, 20, 0.9, 60_000);
  try {
    await sleep(60);
    assert.equal(w.pokes, 0, 'no poke before the window has filled');
    await sleep(400);
    assert.ok(w.pokes >= 1, `poked (${w.pokes})`);
    assert.deepEqual([...new Set(writes)], ['\r']);
    assert.match(lines[0]!, /CPU s in .* poked L1's console/);
  } finally {
    w.stop();
  }
});

test('a busy process is still poked once a period, and never without a console', async () => {
  const { socket, writes } = recorder();
  let connected = false;
  const lines: string[] = [];
  // busyShare 0: never "idle", so only the period can poke.
  const w = watchForFreeze(process.pid, () => (connected ? socket : undefined), (l) => lines.push(l), 50, 10, 0, 100);
  try {
    await sleep(250);
    assert.equal(w.pokes, 0, 'no console yet: nothing to poke');
    connected = true;
    await sleep(60);
    assert.equal(w.pokes, 1, 'the overdue period pokes as soon as the console exists');
    await sleep(250);
    assert.ok(w.pokes >= 2 && w.pokes <= 4, `about one poke per 100 ms (${w.pokes})`);
    assert.equal(writes.length, w.pokes);
    assert.deepEqual(lines, [], 'periodic pokes are counted, not logged');
  } finally {
    w.stop();
  }
  const n = w.pokes;
  await sleep(150);
  assert.equal(w.pokes, n, 'stop() ends the watch');
});
