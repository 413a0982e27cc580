// The `user` backend against the real passt (Debian package `passt`): DHCP, UDP to the host's
// loopback through the gateway, UDP from a forwarded host port into the "guest", lifecycle and
// bad input. The guest here is the test itself, writing Ethernet frames by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeStreamFrame, MAX_STREAM_FRAME, StreamFrameDecoder } from '../../lib/net/stream-framing.js';
import { userNet, type UserNetBackend } from '../../lib/net/user.js';
import { passtArgv, DEFAULT_USER_ADDRESSING } from '../../lib/net/passt.js';
import { findCommand } from '../../lib/net/netns.js';
import { fillIpv4HeaderChecksum } from '../../lib/net/checksum.js';

const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const haveP = findCommand('passt') !== undefined;
const needPasst = { skip: !haveP && process.env.CI !== 'true' ? 'passt is not installed (apt-get install passt)' : false };

test('stream framing: frames split anywhere come out whole, in order', () => {
  const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(1500).fill(7), new Uint8Array([9])];
  const wire = Buffer.concat(frames.map(encodeStreamFrame));
  for (const step of [1, 3, 5, 1000, wire.length]) {
    const got: Uint8Array[] = [];
    const d = new StreamFrameDecoder((f) => got.push(f), (m) => assert.fail(m));
    for (let i = 0; i < wire.length; i += step) d.push(wire.subarray(i, i + step));
    assert.deepEqual(got.map((f) => Buffer.from(f)), frames.map((f) => Buffer.from(f)));
  }
});

test('stream framing: a zero or oversized length stops the decoder with an error', () => {
  for (const len of [0, MAX_STREAM_FRAME + 1, 0xffffffff]) {
    const errors: string[] = [];
    const got: Uint8Array[] = [];
    const d = new StreamFrameDecoder((f) => got.push(f), (m) => errors.push(m));
    const b = Buffer.alloc(8);
    b.writeUInt32BE(len, 0);
    d.push(b);
    d.push(encodeStreamFrame(new Uint8Array([1])));
    assert.equal(errors.length, 1);
    assert.equal(got.length, 0, 'nothing after a broken length is trusted');
  }
});

test('passt argv: fd 3, one-off, addressing and forwards bound to their address', () => {
  const argv = passtArgv(DEFAULT_USER_ADDRESSING, [{ proto: 'tcp', address: '127.0.0.1', host: 8080, guest: 80 }, { proto: 'udp', address: '127.0.0.1', host: 5353, guest: 53 }]);
  assert.deepEqual(argv.slice(argv.indexOf('--fd'), argv.indexOf('--fd') + 2), ['--fd', '3']);
  assert.ok(argv.includes('--one-off'));
  assert.deepEqual(argv.slice(-4), ['--tcp-ports', '127.0.0.1/8080:80', '--udp-ports', '127.0.0.1/5353:53']);
});

test('bad forwards are ERR_INVALID_NET naming the field', () => {
  for (const [f, field] of [[{ guest: 0 }, 'guest'], [{ guest: 70000 }, 'guest'], [{ guest: 80, host: -1 }, 'host'], [{ guest: 80, proto: 'sctp' }, 'proto'], [{ guest: 1.5 }, 'guest']] as const) {
    assert.throws(() => userNet({ forward: [f as never] }), (e: NodeJS.ErrnoException) => e.code === 'ERR_INVALID_NET' && e.message.includes(field));
  }
});

function ipv4(proto: number, src: number[], dst: number[], payload: Uint8Array): Uint8Array {
  const ip = new Uint8Array(20 + payload.length);
  const v = new DataView(ip.buffer);
  ip[0] = 0x45;
  v.setUint16(2, ip.length);
  ip[8] = 64;
  ip[9] = proto;
  ip.set(src, 12);
  ip.set(dst, 16);
  ip.set(payload, 20);
  fillIpv4HeaderChecksum(ip, 0);
  return ip;
}

function udp(sport: number, dport: number, data: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  const v = new DataView(u.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint16(4, u.length);
  u.set(data, 8); // checksum 0: none (allowed over IPv4)
  return u;
}

function eth(dst: number[], type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(GUEST_MAC, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

function dhcpDiscover(): Uint8Array {
  const b = new Uint8Array(244);
  b[0] = 1; b[1] = 1; b[2] = 6;
  b.set([0x12, 0x34, 0x56, 0x78], 4);
  b.set(GUEST_MAC, 28);
  b.set([0x63, 0x82, 0x53, 0x63], 236);
  b.set([53, 1, 1, 255], 240);
  return eth([255, 255, 255, 255, 255, 255], 0x0800, ipv4(17, [0, 0, 0, 0], [255, 255, 255, 255], udp(68, 67, b)));
}

/** The next frame the backend delivers that `match` accepts. */
function nextFrame(b: UserNetBackend, match: (f: Uint8Array) => boolean, ms = 5000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error('no matching frame from passt')); }, ms);
    const off = b.onReceive((f) => { if (match(f)) { clearTimeout(t); off(); resolve(f); } });
  });
}

const isUdpTo = (port: number) => (f: Uint8Array) => f[12] === 0x08 && f[13] === 0 && f[23] === 17 && ((f[36]! << 8) | f[37]!) === port;

/** Guest's DHCP discover; returns the offered address and passt's MAC. */
async function lease(b: UserNetBackend): Promise<{ yiaddr: number[]; gwMac: number[] }> {
  const offer = nextFrame(b, isUdpTo(68));
  b.send(dhcpDiscover());
  const f = await offer;
  return { yiaddr: [...f.subarray(42 + 16, 42 + 20)], gwMac: [...f.subarray(6, 12)] };
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (!existsSync(`/proc/${pid}`)) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

test('user backend: DHCP lease, UDP both ways, close leaves no passt', needPasst, async () => {
  const b = userNet({ forward: [{ proto: 'udp', guest: 7777 }] });
  try {
    await b.ready;
    assert.equal(b.linkUp, true);
    const fwd = b.forwards[0]!;
    assert.ok(fwd.host > 0, 'host port 0 picks a free port and reports it');
    const { yiaddr, gwMac } = await lease(b);
    assert.deepEqual(yiaddr, [10, 0, 2, 15]);

    // Guest → the gateway address → this host's loopback.
    const srv = createSocket('udp4');
    await new Promise<void>((r) => srv.bind(0, '127.0.0.1', () => r()));
    const got = new Promise<Buffer>((r) => srv.once('message', (m) => r(m)));
    b.send(eth(gwMac, 0x0800, ipv4(17, [10, 0, 2, 15], [10, 0, 2, 2], udp(40000, srv.address().port, Buffer.from('to the host')))));
    assert.equal((await got).toString(), 'to the host');

    // Host → forwarded port → the guest's UDP port.
    const inbound = nextFrame(b, isUdpTo(7777));
    srv.send(Buffer.from('to the guest'), fwd.host, '127.0.0.1');
    const f = await inbound;
    assert.equal(Buffer.from(f.subarray(42)).toString(), 'to the guest');
    srv.close();
  } finally {
    b.close();
    await b.exited;
  }
});

test('user backend: close() kills passt and leaves no process; link goes down', needPasst, async () => {
  const before = spawnSync('pgrep', ['-x', 'passt(\\.avx2)?'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  const b = userNet();
  await b.ready;
  const pid = (b as unknown as { child: { pid: number } }).child.pid;
  assert.ok(existsSync(`/proc/${pid}`));
  b.close();
  await b.exited;
  assert.equal(await gone(pid), true);
  assert.equal(b.linkUp, false);
  const after = spawnSync('pgrep', ['-x', 'passt(\\.avx2)?'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  assert.deepEqual(after, before);
});

test('user backend: passt killed from outside → link down and a failure event', needPasst, async () => {
  const b = userNet();
  await b.ready;
  const links: boolean[] = [];
  b.onLinkChange((up) => links.push(up));
  const failed = new Promise<Error>((r) => b.onFailure((e) => r(e)));
  process.kill((b as unknown as { child: { pid: number } }).child.pid, 'SIGKILL');
  const e = await failed;
  assert.equal((e as NodeJS.ErrnoException).code, 'ERR_NET_USER_EXITED');
  assert.deepEqual(links, [false]);
  b.close();
  await b.exited;
});

test('user backend: a forward to a host port in use is ERR_NET_PORT_IN_USE, nothing left running', needPasst, async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  const before = spawnSync('pgrep', ['-x', 'passt(\\.avx2)?'], { encoding: 'utf8' }).stdout.trim();
  try {
    const b = userNet({ forward: [{ host: port, guest: 80 }] });
    await assert.rejects(b.ready, (e: NodeJS.ErrnoException) => e.code === 'ERR_NET_PORT_IN_USE' && e.message.includes(String(port)));
    b.close();
    await b.exited;
    assert.equal(spawnSync('pgrep', ['-x', 'passt(\\.avx2)?'], { encoding: 'utf8' }).stdout.trim(), before);
  } finally {
    busy.close();
  }
});

test('user backend: forward() after start to a host port in use is ERR_NET_PORT_IN_USE; the running passt and its forwards stay', needPasst, async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  const b = userNet({ forward: [{ guest: 22 }] });
  try {
    await b.ready;
    const pid = (b as unknown as { child: { pid: number } }).child.pid;
    await assert.rejects(b.forward(80, { host: port }), (e: NodeJS.ErrnoException) => e.code === 'ERR_NET_PORT_IN_USE' && e.message.includes(String(port)));
    assert.equal((b as unknown as { child: { pid: number } }).child.pid, pid, 'passt was not restarted');
    assert.equal(b.linkUp, true);
    assert.deepEqual(b.forwards.map((f) => f.guest), [22]);
    await assert.rejects(b.forward(0), (e: NodeJS.ErrnoException) => e.code === 'ERR_INVALID_NET' && /guest/.test(e.message));
    await assert.rejects(b.forward(65536), (e: NodeJS.ErrnoException) => e.code === 'ERR_INVALID_NET');
    assert.equal(b.stats.starts, 1);
    const next = await b.forward(80);
    assert.deepEqual(b.forwards.map((f) => [f.guest, f.host]), [[22, b.forwards[0]!.host], [80, next]], 'a later forward() still works');
    assert.equal(b.stats.starts, 2);
  } finally {
    busy.close();
    b.close();
    await b.exited;
  }
});

test('user backend: forward() restarts keep a forward with a fixed host port (the old passt is gone before the new binds it)', needPasst, async () => {
  const { freePort } = await import('../../lib/net/passt.js');
  const fixed = await freePort('tcp', '127.0.0.1');
  const b = userNet({ forward: [{ host: fixed, guest: 22 }] });
  try {
    await b.ready;
    for (const guest of [80, 81, 82]) await b.forward(guest);
    assert.equal(b.stats.starts, 4, 'each restart bound everything the first time');
    assert.equal(b.forwards[0]!.host, fixed);
    const c = connect(fixed, '127.0.0.1');
    await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject); });
    c.destroy();
  } finally {
    b.close();
    await b.exited;
  }
});

test('user backend: forward() after start adds a forward and reports its host port', needPasst, async () => {
  const b = userNet();
  try {
    await b.ready;
    const port = await b.forward(8080);
    assert.ok(port > 0);
    assert.deepEqual(b.forwards.map((f) => [f.proto, f.guest, f.host]), [['tcp', 8080, port]]);
    assert.equal(await b.forward(8080), port, 'asking again gives the same forward');
    const both = await Promise.all([b.forward(9001), b.forward(9002, { proto: 'udp' })]);
    assert.deepEqual(b.forwards.map((f) => [f.proto, f.guest, f.host]), [['tcp', 8080, port], ['tcp', 9001, both[0]], ['udp', 9002, both[1]]], 'concurrent forward() calls each add theirs');
    assert.equal(b.linkUp, true);
    assert.equal(b.stats.starts, 4);
  } finally {
    b.close();
    await b.exited;
  }
});

test('user backend: after forward() restarts passt, a connection through it reaches the guest at its MAC', needPasst, async () => {
  const b = userNet();
  const conns: import('node:net').Socket[] = [];
  try {
    await b.ready;
    await lease(b); // passt learns the guest's MAC from this; the guest is idle from here on
    const port = await b.forward(8080);
    assert.equal(b.stats.starts, 2);
    // The host connects; passt sends the guest a SYN. A new passt that had not learnt the guest's
    // MAC would address it to 00:00:00:00:00:00, which the NIC's receive filter drops.
    const syn = nextFrame(b, (f) => f[12] === 0x08 && f[13] === 0 && f[23] === 6 && ((f[36]! << 8) | f[37]!) === 8080);
    const c = connect(port, '127.0.0.1');
    c.on('error', () => {});
    conns.push(c);
    const f = await syn;
    assert.deepEqual([...f.subarray(0, 6)], GUEST_MAC, 'the SYN is addressed to the guest');
    assert.deepEqual([...f.subarray(30, 34)], [10, 0, 2, 15]);
    assert.equal(f[47]! & 0x12, 0x02, 'a SYN');
  } finally {
    for (const c of conns) c.destroy();
    b.close();
    await b.exited;
  }
});

test('arpAnnouncement: a gratuitous ARP request, sender and target the guest', async () => {
  const { arpAnnouncement } = await import('../../lib/net/user.js');
  const f = arpAnnouncement(new Uint8Array(GUEST_MAC), [10, 0, 2, 15]);
  assert.equal(f.length, 42);
  assert.deepEqual([...f.subarray(0, 14)], [255, 255, 255, 255, 255, 255, ...GUEST_MAC, 8, 6]);
  assert.deepEqual([...f.subarray(14, 22)], [0, 1, 8, 0, 6, 4, 0, 1]);
  assert.deepEqual([...f.subarray(22, 28)], GUEST_MAC);
  assert.deepEqual([...f.subarray(28, 32)], [10, 0, 2, 15]);
  assert.deepEqual([...f.subarray(38, 42)], [10, 0, 2, 15]);
});

test('user backend: a guest flooding a stalled passt is bounded and counted', needPasst, async () => {
  const b = userNet({ maxQueuedBytes: 64 * 1024 });
  try {
    await b.ready;
    b.pauseReceive();
    const frame = eth([255, 255, 255, 255, 255, 255], 0x88b5, new Uint8Array(1500));
    for (let i = 0; i < 20_000; i++) b.send(frame);
    assert.ok(b.stats.txDropped > 0, 'frames beyond the bound are dropped and counted');
  } finally {
    b.close();
    await b.exited;
  }
});

test('user backend: frames from passt for a full ring are held in order (passt is still read), bounded by maxHeldBytes', needPasst, async () => {
  const b = userNet({ forward: [{ proto: 'udp', guest: 7777 }], maxHeldBytes: 32 * 1024 });
  const src = createSocket('udp4');
  try {
    await b.ready;
    await lease(b);
    const got: number[] = [];
    b.onReceive((f) => { if (isUdpTo(7777)(f)) got.push(new DataView(f.buffer, f.byteOffset).getUint32(42)); });
    b.pauseReceive();
    const N = 200;
    for (let i = 0; i < N; i++) {
      const d = Buffer.alloc(1000);
      d.writeUInt32BE(i, 0);
      src.send(d, b.forwards[0]!.host, '127.0.0.1');
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(got.length, 0, 'nothing reaches a paused NIC');
    assert.ok(b.stats.rxStalls >= 1, `the socket was paused past the bound (${JSON.stringify(b.stats)})`);
    assert.ok(b.stats.rxHeldMaxBytes > 32 * 1024 && b.stats.rxHeldMaxBytes < 32 * 1024 + 256 * 1024, `held bytes bounded (${b.stats.rxHeldMaxBytes})`);
    b.resumeReceive();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(got.length > 32, `held frames delivered on resume (${got.length})`);
    assert.deepEqual(got, [...got].sort((x, y) => x - y), 'in order');
    // Frames passt could not send while the socket was paused are its loss, not ours: passt
    // drops what does not fit (MSG_DONTWAIT); what arrives is in order and whole.
  } finally {
    src.close();
    b.close();
    await b.exited;
  }
});

test('passt not installed: ERR_NET_USER_UNAVAILABLE naming the package', () => {
  assert.throws(() => userNet({ passt: '/nonexistent/passt' }), (e: NodeJS.ErrnoException) => e.code === 'ERR_NET_USER_UNAVAILABLE' && /apt-get install passt/.test(e.message) && e.message.includes('at /nonexistent/passt') && !e.message.includes('${'));
});

test('user backend works for an unprivileged user', { skip: process.getuid?.() !== 0 ? 'already unprivileged: the tests above are the proof' : needPasst.skip }, () => {
  // Run the DHCP exchange in a child process as `nobody`.
  const script = fileURLToPath(new URL('./net-user-unprivileged.js', import.meta.url));
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `as nobody: ${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /lease 10\.0\.2\.15 as uid 65534/);
});

test('frames to passt lose their Ethernet padding (passt would take the pad for packet bytes)', async () => {
  const { withoutPadding } = await import('../../lib/net/user.js');
  const ack = eth([2, 0, 0, 0, 0, 1], 0x0800, ipv4(6, [10, 0, 2, 15], [10, 0, 2, 2], new Uint8Array(20)));
  const padded = new Uint8Array(60);
  padded.set(ack);
  assert.equal(withoutPadding(padded).length, 54);
  assert.equal(withoutPadding(ack).length, 54, 'an unpadded frame stays whole');
  const arp = new Uint8Array(60);
  arp[12] = 0x08; arp[13] = 0x06;
  assert.equal(withoutPadding(arp).length, 60, 'only IPv4 is cut');
  const lying = padded.slice();
  lying[16] = 0xff; // IPv4 total length beyond the frame
  assert.equal(withoutPadding(lying).length, 60);
});
