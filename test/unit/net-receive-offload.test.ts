// Receive offloads of a TAP (lib/net/receive-offload.ts): the virtio-net header the host stack
// puts before a super-frame or a frame with its checksum left undone, turned into wire frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  finishReceiveOffload, RX_CHECKSUMS_VALID, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_TCPV4,
  type VnetHeaderLayout,
} from '../../lib/net/receive-offload.js';
import { foldChecksum, internetChecksum, ipv4PseudoHeaderSum, verifyL4Checksum } from '../../lib/net/checksum.js';
import { RxQueue } from '../../lib/devices/rtl8139/rx-queue.js';

// struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
const L: VnetHeaderLayout = { flags: 0, gso_type: 1, hdr_len: 2, gso_size: 4, csum_start: 6, csum_offset: 8 };

function header(fields: { flags?: number; gso?: number; gsoSize?: number; csumStart?: number; csumOffset?: number }): Uint8Array {
  const h = new Uint8Array(10);
  const dv = new DataView(h.buffer);
  h[0] = fields.flags ?? 0;
  h[1] = fields.gso ?? 0;
  dv.setUint16(4, fields.gsoSize ?? 0, true);
  dv.setUint16(6, fields.csumStart ?? 0, true);
  dv.setUint16(8, fields.csumOffset ?? 0, true);
  return h;
}

/** An IPv4/TCP frame with `payload` bytes, IP header checksum done, TCP checksum as the host leaves it (pseudo-header sum). */
function partialTcpFrame(payload: number, flags = 0x18): Uint8Array {
  const f = new Uint8Array(54 + payload);
  f.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00], 0);
  const tot = 40 + payload;
  f.set([0x45, 0, tot >> 8, tot & 0xff, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], 14);
  f.set([0x30, 0x39, 0x00, 0x50, 0x10, 0, 0, 0, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0], 34);
  for (let i = 0; i < payload; i++) f[54 + i] = (i * 7 + 3) & 0xff;
  const ipc = internetChecksum(f, 14, 34);
  f[24] = ipc >> 8;
  f[25] = ipc & 0xff;
  const p = ~foldChecksum(ipv4PseudoHeaderSum(f, 14, 6, 20 + payload)) & 0xffff;
  f[50] = p >> 8;
  f[51] = p & 0xff;
  return f;
}

const tcpOk = (f: Uint8Array): boolean => internetChecksum(f, 14, 34) === 0 &&
  verifyL4Checksum(f, 14, 34, ((f[16]! << 8) | f[17]!) - 20, 6);

test('a plain frame passes untouched; DATA_VALID vouches for its checksums', () => {
  const f = partialTcpFrame(10);
  const r = finishReceiveOffload(f, header({}), 0, L);
  assert.ok(!('error' in r));
  assert.equal(r.frames[0], f);
  assert.equal(r.flags, 0);
  assert.equal(r.kind, 'plain');
  const v = finishReceiveOffload(f, header({ flags: VNET_F_DATA_VALID }), 0, L);
  assert.ok(!('error' in v) && v.flags === RX_CHECKSUMS_VALID);
});

test('NEEDS_CSUM: the TCP checksum is finished in place and verifies', () => {
  for (const payload of [0, 1, 99, 1460]) {
    const f = partialTcpFrame(payload);
    assert.equal(tcpOk(f), false);
    const r = finishReceiveOffload(f, header({ flags: VNET_F_NEEDS_CSUM, csumStart: 34, csumOffset: 16 }), 0, L);
    assert.ok(!('error' in r));
    assert.equal(r.kind, 'checksummed');
    assert.equal(r.frames[0], f);
    assert.ok(tcpOk(f), `payload ${payload}`);
    assert.equal(r.flags, RX_CHECKSUMS_VALID);
  }
});

test('a TCPv4 super-frame is cut into MSS-sized segments with sequence numbers, flags and checksums right', () => {
  const payload = 65000;
  const mss = 1448;
  const f = partialTcpFrame(payload, 0x19); // PSH|FIN|ACK: only on the last segment
  const r = finishReceiveOffload(f, header({ flags: VNET_F_NEEDS_CSUM, gso: VNET_GSO_TCPV4 | VNET_GSO_ECN, gsoSize: mss, csumStart: 34, csumOffset: 16 }), 0, L);
  assert.ok(!('error' in r));
  assert.equal(r.kind, 'segmented');
  assert.equal(r.frames.length, Math.ceil(payload / mss));
  let seq = 0x10000000;
  let bytes = 0;
  for (const [i, s] of r.frames.entries()) {
    const dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
    assert.ok(tcpOk(s), `segment ${i}`);
    assert.equal(dv.getUint32(38), seq >>> 0);
    const n = s.length - 54;
    assert.ok(n <= mss);
    assert.deepEqual(s.subarray(54), f.subarray(54 + bytes, 54 + bytes + n));
    assert.equal(s[47]! & 0x09, i === r.frames.length - 1 ? 0x09 : 0);
    seq += n;
    bytes += n;
  }
  assert.equal(bytes, payload);
});

test('offload requests that make no sense are errors, never a throw or a write out of bounds', () => {
  const f = partialTcpFrame(100);
  const copy = f.slice();
  const bad = [
    header({ flags: VNET_F_NEEDS_CSUM, csumStart: 150, csumOffset: 16 }),
    header({ flags: VNET_F_NEEDS_CSUM, csumStart: 0xffff, csumOffset: 0xffff }),
    header({ gso: 4 /* TCPv6 */, gsoSize: 1000 }),
    header({ gso: 3 /* UDP */, gsoSize: 1000 }),
    header({ gso: VNET_GSO_TCPV4, gsoSize: 0 }),
  ];
  for (const h of bad) {
    const r = finishReceiveOffload(f, h, 0, L);
    assert.ok('error' in r, JSON.stringify([...h]));
  }
  assert.deepEqual(f, copy);
  // A super-frame that is not TCP/IPv4 (here: ARP).
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  assert.ok('error' in finishReceiveOffload(arp, header({ gso: VNET_GSO_TCPV4, gsoSize: 1000 }), 0, L));
});

test('RxQueue: pauses the backend once frames wait, resumes when they are all taken, keeps flags with frames', () => {
  let room = 0;
  const taken: Array<[number, number]> = [];
  const calls: boolean[] = [];
  let missed = 0;
  const q = new RxQueue({
    tryReceive: (f, flags) => { if (room === 0) return 'full'; room--; taken.push([f[0]!, flags]); return 'ok'; },
    countMissed: () => { missed++; },
    countQueued: () => {},
    backpressure: (p) => { calls.push(p); },
  }, 8, 3);
  for (let i = 0; i < 10; i++) q.push(Uint8Array.of(i), i & 1);
  assert.deepEqual(calls, [true]);
  assert.equal(q.length, 8);
  assert.equal(missed, 2);
  assert.equal(q.backendPaused, true);
  room = 5;
  q.flush();
  assert.deepEqual(calls, [true], 'not resumed while frames still wait');
  room = 100;
  q.flush();
  assert.deepEqual(calls, [true, false]);
  assert.deepEqual(taken, [0, 1, 2, 3, 4, 5, 6, 7].map((i) => [i, i & 1]));
  assert.equal(q.backendPaused, false);
});
