// A receiver that advertises a tiny MSS makes the sending host stack hand the TAP 64 KiB
// super-frames of many small segments each (receive offload on; up to ~1,800 at 64 KiB). The TAP cuts them
// only as fast as its listener takes frames: a listener that pauses after a turn's worth (as
// the RTL8139's receive budget does) gets no more than that per turn, and the bytes still
// arrive intact. Two TAPs bridged here, each in its own namespace; needs root and
// /dev/net/tun (not /dev/kvm): in CI their absence FAILS the test, elsewhere it is skipped.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { TapBackend } from '../../lib/net/tap.js';
import { NetNs, netnsUnavailableReason } from '../../lib/net/netns.js';
import { TcpSegmenter } from '../../lib/net/tcp-segmentation.js';

const inCI = process.env.CI === 'true' || process.env.CI === '1';

function requireTap(t: TestContext): boolean {
  let why = netnsUnavailableReason();
  if (why === undefined) {
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    } catch (e) {
      why = `/dev/net/tun not usable (${(e as NodeJS.ErrnoException).code}): modprobe tun`;
    }
  }
  if (why === undefined) return true;
  if (inCI) throw new Error(`CI requires TAP + netns support: ${why}`);
  process.stderr.write(`\n*** SKIPPING TAP TEST "${t.name}": ${why} ***\n`);
  t.skip(why);
  return false;
}

const SENDER = `
const net = require('node:net'), crypto = require('node:crypto');
const data = crypto.randomBytes(Number(process.argv[2]));
const s = net.connect(5001, process.argv[1], () => s.end(data));
s.on('close', () => console.log(crypto.createHash('sha256').update(data).digest('hex')));
s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
const RECEIVER = `
const net = require('node:net'), crypto = require('node:crypto');
const srv = net.createServer((c) => { const h = crypto.createHash('sha256'); let n = 0;
  c.on('data', (b) => { h.update(b); n += b.length; });
  c.on('end', () => { console.log(n + ' ' + h.digest('hex')); srv.close(); }); });
srv.listen(5001, () => console.log('listening'));`;

function outputOf(child: ReturnType<NetNs['spawn']>): Promise<string> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`)))));
}

/** Frames a listener takes per turn before it pauses the TAP. */
const PER_TURN = 64;

test('super-frames at a tiny MSS are cut only as fast as a pausing listener takes them', { timeout: 180_000 }, async (t) => {
  if (!requireTap(t)) return;
  const nsA = await NetNs.create();
  const nsB = await NetNs.create();
  const a = TapBackend.open();
  const b = TapBackend.open();
  try {
    assert.equal(a.receiveOffload, true);
    let inTurn = 0;
    let most = 0;
    let resume: NodeJS.Immediate | undefined;
    // Count the segments cut while the listener has the TAP paused: only the rest of the
    // chunk being delivered when it paused, never the rest of the batch.
    let cutWhilePaused = 0;
    let cutInOnePause = 0;
    let mostInOnePause = 0;
    const cut = Object.getOwnPropertyDescriptor(TcpSegmenter.prototype, 'cut')!.value as TcpSegmenter['cut'];
    TcpSegmenter.prototype.cut = function (this: TcpSegmenter, count: number): Uint8Array[] {
      const out = cut.call(this, count);
      if (resume !== undefined) {
        cutWhilePaused += out.length;
        cutInOnePause += out.length;
        mostInOnePause = Math.max(mostInOnePause, cutInOnePause);
      }
      return out;
    };
    t.after(() => { TcpSegmenter.prototype.cut = cut; });
    a.onReceive((f) => {
      b.send(f);
      inTurn++;
      most = Math.max(most, inTurn);
      if (inTurn >= PER_TURN && resume === undefined) {
        a.pauseReceive();
        cutInOnePause = 0;
        resume = setImmediate(() => {
          resume = undefined;
          inTurn = 0;
          a.resumeReceive();
        });
      }
    });
    b.onReceive((f) => a.send(f));
    await nsA.adoptLink(a.name, '10.0.9.1/24');
    await nsB.adoptLink(b.name, '10.0.9.2/24');
    // B advertises a tiny MSS: A's stack then sends super-frames of small segments.
    await nsB.ip(['route', 'change', '10.0.9.0/24', 'dev', b.name, 'advmss', '48']);
    const receiver = nsB.spawn([process.execPath, '-e', RECEIVER]);
    const received = outputOf(receiver);
    await new Promise<void>((resolve) => receiver.stdout!.once('data', () => resolve()));
    const bytes = 2 * 1024 * 1024;
    const sent = (await outputOf(nsA.spawn([process.execPath, '-e', SENDER, '10.0.9.2', String(bytes)]))).trim();
    const [n, sum] = (await received).trim().split('\n').pop()!.split(' ');
    const s = a.stats;
    t.diagnostic(`A ${JSON.stringify(s)}; at most ${most} frames in a turn; ${cutWhilePaused} segments cut while paused, at most ${mostInOnePause} in one pause; ${(s.rxSegments / Math.max(1, s.rxSegmented)).toFixed(0)} segments per super-frame`);
    assert.equal(Number(n), bytes);
    assert.equal(sum, sent);
    assert.ok(s.rxSegmented > 0, 'the sending stack handed over super-frames');
    // How many segments a super-frame holds is the sending stack's choice (TSO autosizing):
    // ~100 here, 2 in the nested lab, where time runs ~10x slower.
    assert.ok(s.rxSegments > s.rxSegmented, 'super-frames of several segments');
    assert.ok(s.rxHeld > 0, 'the listener paused the TAP mid-batch');
    assert.ok(most <= PER_TURN, `a turn took ${most} frames`);
    assert.ok(mostInOnePause <= 32, `${mostInOnePause} segments cut in one pause: the rest of a batch must wait uncut`);
    assert.equal(s.rxOffloadErrors, 0);
  } finally {
    a.close();
    b.close();
    await nsA.close();
    await nsB.close();
  }
});
