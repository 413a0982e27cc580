import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { inCI } from '../helpers/kvm.js';
import { MemoryBackend, PcapWriter, type PcapSink, type TcpSegmentation } from '../../lib/net/index.js';
import { foldChecksum, internetChecksum, ipv4PseudoHeaderSum, sum16 } from '../../lib/net/checksum.js';
import { prepareSegmentation } from '../../lib/net/tcp-segmentation.js';

class BufferSink implements PcapSink {
  readonly chunks: Uint8Array[] = [];
  closed = false;
  write(c: Uint8Array): void { this.chunks.push(c.slice()); }
  close(): void { this.closed = true; }
  bytes(): Buffer { return Buffer.concat(this.chunks); }
}

function udpFrame(): Uint8Array {
  const f = new Uint8Array(60);
  f.set([255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, 1, 0x08, 0x00], 0);
  f.set([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 255], 14);
  f.set([0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0], 34);
  return f;
}

test('global header and record layout (nanosecond magic, linktype 1)', () => {
  const sink = new BufferSink();
  const p = new PcapWriter(sink, { snaplen: 64 });
  p.write(new Uint8Array(100).fill(7), 1_700_000_000_123_456_789n);
  p.close();
  assert.equal(sink.closed, true);
  const b = sink.bytes();
  assert.equal(b.length, 24 + 16 + 64);
  assert.equal(b.readUInt32LE(0), 0xa1b23c4d);
  assert.equal(b.readUInt16LE(4), 2);
  assert.equal(b.readUInt16LE(6), 4);
  assert.equal(b.readInt32LE(8), 0);
  assert.equal(b.readUInt32LE(12), 0);
  assert.equal(b.readUInt32LE(16), 64);
  assert.equal(b.readUInt32LE(20), 1);
  assert.equal(b.readUInt32LE(24), 1_700_000_000);
  assert.equal(b.readUInt32LE(28), 123_456_789);
  assert.equal(b.readUInt32LE(32), 64, 'incl_len truncated to snaplen');
  assert.equal(b.readUInt32LE(36), 100, 'orig_len');
  assert.equal(b[40], 7);
});

test('wrap() records both directions and passes frames and carrier through', () => {
  const sink = new BufferSink();
  let t = 5_000_000_000n;
  const p = new PcapWriter(sink, { now: () => (t += 1000n) });
  const inner = new MemoryBackend();
  const b = p.wrap(inner);
  const rx: Uint8Array[] = [];
  b.onReceive((f) => rx.push(f));
  const links: boolean[] = [];
  b.onLinkChange((u) => links.push(u));
  b.send(udpFrame());
  inner.inject(udpFrame());
  inner.setLinkUp(false);
  assert.equal(inner.sent.length, 1);
  assert.equal(rx.length, 1);
  assert.deepEqual(links, [false]);
  assert.equal(b.linkUp, false);
  assert.equal(p.packets, 2);
  const untap = p.tap(inner);
  inner.inject(udpFrame());
  untap();
  inner.inject(udpFrame());
  assert.equal(p.packets, 5, 'wrap + tap saw the third frame; only wrap the fourth');
  b.close();
});

/** IPv4/TCP frame with `payload` bytes (checksums left zero). */
function tcpFrame(payload: number): Uint8Array {
  const f = new Uint8Array(54 + payload);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], 0);
  const tot = 40 + payload;
  f.set([0x45, 0, tot >> 8, tot & 0xff, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], 14);
  f.set([0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0], 34);
  for (let i = 0; i < payload; i++) f[54 + i] = i & 0xff;
  return f;
}

class WholeBackend extends MemoryBackend {
  readonly whole: Uint8Array[] = [];
  sendSegmented(frame: Uint8Array, _tso: TcpSegmentation): boolean {
    this.whole.push(frame.slice());
    return true;
  }
}

test('wrap() passes a TSO frame on whole when the inner backend takes it, and records the wire segments', () => {
  const sink = new BufferSink();
  const p = new PcapWriter(sink);
  const inner = new WholeBackend();
  const b = p.wrap(inner);
  const prepared = prepareSegmentation(tcpFrame(3000), 1448)!;
  assert.equal(b.sendSegmented!(prepared.frame, prepared.tso), true);
  assert.equal(inner.whole.length, 1);
  assert.equal(inner.sent.length, 0);
  assert.equal(p.packets, 3, 'three segments recorded');
  // Records: 24-byte global header, then 16-byte record headers.
  const bytes = sink.bytes();
  let o = 24;
  const lens: number[] = [];
  for (let i = 0; i < 3; i++) {
    const len = bytes.readUInt32LE(o + 8);
    const seg = Uint8Array.from(bytes.subarray(o + 16, o + 16 + len));
    lens.push(len - 54);
    assert.equal(internetChecksum(seg, 14, 34), 0, 'IP checksum');
    assert.equal(foldChecksum(sum16(seg, 34, seg.length, ipv4PseudoHeaderSum(seg, 14, 6, seg.length - 34))), 0, 'TCP checksum complete');
    o += 16 + len;
  }
  assert.deepEqual(lens, [1448, 1448, 104]);
  // An inner backend that cannot take frames whole: the wrapper declines too (the NIC cuts).
  const plain = p.wrap(new MemoryBackend());
  assert.equal(plain.sendSegmented!(prepared.frame, prepared.tso), false);
  assert.equal(p.packets, 3);
  b.close();
  plain.close();
});

test('a closed capture records nothing more, and its wrapper still passes every frame on', () => {
  const sink = new BufferSink();
  const p = new PcapWriter(sink);
  const inner = new WholeBackend();
  const b = p.wrap(inner);
  b.send(udpFrame());
  assert.equal(p.closed, false);
  p.close();
  assert.equal(p.closed, true);
  assert.equal(sink.closed, true);
  const size = sink.bytes().length;
  const prepared = prepareSegmentation(tcpFrame(3000), 1448)!;
  assert.equal(b.sendSegmented!(prepared.frame, prepared.tso), true);
  b.send(udpFrame());
  inner.inject(udpFrame());
  assert.equal(inner.whole.length, 1, 'the TSO frame reached the inner backend whole');
  assert.equal(inner.sent.length, 2);
  assert.equal(p.packets, 1);
  assert.equal(sink.bytes().length, size);
  b.close();
});

// Outside CI a host without tshark skips this one loudly; CI installs it (scripts/apt-packages.txt).
test('tshark reads the file back', { skip: !existsSync('/usr/bin/tshark') && !inCI ? 'tshark not installed (apt-get install tshark)' : false }, () => {
  assert.ok(existsSync('/usr/bin/tshark'), 'CI needs tshark: scripts/apt-packages.txt installs it');
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-pcap-'));
  try {
    const path = join(dir, 'x.pcap');
    const p = new PcapWriter(path);
    p.write(udpFrame(), 1_700_000_000_000_000_001n);
    p.write(udpFrame(), 1_700_000_000_500_000_000n);
    p.close();
    assert.equal(readFileSync(path).readUInt32LE(0), 0xa1b23c4d);
    const out = execFileSync('/usr/bin/tshark', ['-r', path, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.src', '-e', 'udp.dstport'],
      { encoding: 'utf8', env: { ...process.env, HOME: dir } });
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^1700000000\.000000001\t10\.0\.0\.1\t53$/);
    assert.match(lines[1]!, /^1700000000\.500000000\t/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
